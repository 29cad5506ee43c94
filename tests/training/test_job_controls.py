"""Cancel and resume a training job from the API (/api/v1/jobs/) and the Django admin; a job that
works for a running round takes its round with it."""

import pytest

from feedback.models import Role
from training import jobs, rounds
from training.models import JobKind, JobStatus, RoundState, TrainingJob

from .builders import make_prompt_set, make_version

pytestmark = pytest.mark.django_db
URL = "/api/v1/jobs/"


@pytest.fixture
def no_dispatch(monkeypatch):
    """Jobs stay queued: no worker takes them here."""
    monkeypatch.setattr(jobs, "dispatch", lambda job: None)


@pytest.fixture
def standalone(project, no_dispatch):
    """A generate job outside any round, as side by side queues for missing outputs."""
    return jobs.queue_job(kind=JobKind.GENERATE, model_version_id=make_version(project).pk)


@pytest.fixture
def round_job(project, no_dispatch):
    prompt_set, _ = make_prompt_set(project, n=2)
    round_ = rounds.launch_round(
        project_id=project.pk,
        policy_id=make_version(project).pk,
        prompt_set_id=prompt_set.pk,
        method="dpo",
    )
    return round_.jobs.get()


def test_admins_cancel_and_resume_a_job_through_the_api(client, standalone, make_member):
    client.force_login(make_member(Role.ADMIN))
    listed = client.get(URL).json()["results"]
    assert [(job["id"], job["status"]) for job in listed] == [(standalone.pk, "queued")]

    cancelled = client.post(f"{URL}{standalone.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"{URL}{standalone.pk}/cancel/")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]

    resumed = client.post(f"{URL}{standalone.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert client.get(f"{URL}{standalone.pk}/").json()["cancel_requested"] is False


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ANNOTATOR, None])
def test_only_the_projects_admins_see_or_stop_its_jobs(
    client, standalone, make_member, make_user, role
):
    client.force_login(make_member(role) if role else make_user())
    assert client.get(URL).json()["results"] == []
    assert client.post(f"{URL}{standalone.pk}/cancel/").status_code == 404
    assert TrainingJob.objects.get(pk=standalone.pk).status == JobStatus.QUEUED


def test_cancelling_a_rounds_job_cancels_the_round_and_resuming_it_resumes_the_round(
    client, round_job, make_member
):
    client.force_login(make_member(Role.ADMIN))
    assert client.post(f"{URL}{round_job.pk}/cancel/").json()["status"] == "cancelled"
    round_job.alignment_round.refresh_from_db()
    assert round_job.alignment_round.state == RoundState.CANCELLED

    assert client.post(f"{URL}{round_job.pk}/resume/").json()["status"] == "queued"
    round_job.alignment_round.refresh_from_db()
    assert round_job.alignment_round.state == RoundState.GENERATING


def test_a_finished_job_is_not_cancelled_and_its_round_goes_on(client, round_job, make_member):
    client.force_login(make_member(Role.ADMIN))
    jobs.finish_succeeded(round_job.pk, artifacts={}, result_version_id=None)
    round_job.alignment_round.state = RoundState.ANNOTATING
    round_job.alignment_round.save(update_fields=["state"])
    refused = client.post(f"{URL}{round_job.pk}/cancel/")
    assert refused.status_code == 409 and "already ended" in refused.json()["detail"]
    round_job.alignment_round.refresh_from_db()
    assert round_job.alignment_round.state == RoundState.ANNOTATING


def test_the_admin_cancels_and_resumes_selected_jobs(client, standalone, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    changelist = "/admin/training/trainingjob/"
    response = client.post(
        changelist, {"action": "cancel", "_selected_action": [standalone.pk]}, follow=True
    )
    assert "Jobs cancelled: 1." in response.content.decode()
    assert TrainingJob.objects.get(pk=standalone.pk).status == JobStatus.CANCELLED
    # A second cancel is refused, and the admin says why.
    response = client.post(
        changelist, {"action": "cancel", "_selected_action": [standalone.pk]}, follow=True
    )
    assert "already ended" in response.content.decode()
    client.post(changelist, {"action": "resume", "_selected_action": [standalone.pk]})
    assert TrainingJob.objects.get(pk=standalone.pk).status == JobStatus.QUEUED
