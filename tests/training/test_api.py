"""The rounds API (/api/v1/rounds/): admins of a project (and staff) only; writes go through
training.rounds."""

import pytest

from feedback import services
from feedback.models import Role
from training.models import AlignmentRound, JobKind, JobStatus, RoundState, TrainingJob

from .builders import make_prompt_set, make_round, make_version

pytestmark = pytest.mark.django_db
URL = "/api/v1/rounds/"


@pytest.fixture
def setup(project):
    policy = make_version(project, "base")
    prompt_set, prompts = make_prompt_set(project, n=2)
    return {"policy": policy, "prompt_set": prompt_set, "prompts": prompts}


def launch_body(project, setup, **overrides):
    return {
        "project": project.pk,
        "policy": setup["policy"].pk,
        "prompt_set": setup["prompt_set"].pk,
        "method": "ppo",
        "hyperparameters": {"ppo": {"kl_coef": 0.1}},
        **overrides,
    }


def test_admins_launch_a_round_and_its_generate_job(
    client, project, setup, make_member, django_capture_on_commit_callbacks
):
    client.force_login(make_member(Role.ADMIN))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(URL, launch_body(project, setup), content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    round_ = AlignmentRound.objects.get(pk=body["id"])
    assert (body["state"], body["method"], body["judgments_collected"]) == ("generating", "ppo", 0)
    assert round_.hyperparameters["ppo"]["kl_coef"] == 0.1
    assert [job["kind"] for job in body["jobs"]] == ["generate"]
    assert len(callbacks) == 1


def test_launch_refusals_come_back_as_400_with_the_services_message(
    client, project, setup, make_member
):
    client.force_login(make_member(Role.ADMIN))
    response = client.post(
        URL,
        launch_body(project, setup, hyperparameters={"dpo": {}}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "Unknown hyperparameter section 'dpo' for ppo; use generation, ppo, reward."
    )
    response = client.post(
        URL, launch_body(project, setup, samples_per_prompt=1), content_type="application/json"
    )
    assert response.status_code == 400 and "samples_per_prompt" in response.json()
    assert not AlignmentRound.objects.exists()


def test_only_admins_and_staff_see_and_launch_rounds(
    client, project, setup, make_member, make_user
):
    round_ = make_round(project, setup["policy"], setup["prompt_set"])
    other = services.create_project(name="Other")
    other_policy = make_version(other, "other-base")
    other_set, _ = make_prompt_set(other)
    foreign = make_round(other, other_policy, other_set)

    client.force_login(make_member(Role.REVIEWER))
    assert client.get(URL).json()["results"] == []
    assert client.get(f"{URL}{round_.pk}/").status_code == 404
    assert (
        client.post(URL, launch_body(project, setup), content_type="application/json").status_code
        == 403
    )
    assert client.post(f"{URL}{round_.pk}/cancel/").status_code == 404

    client.force_login(make_member(Role.ADMIN))
    assert [r["id"] for r in client.get(URL).json()["results"]] == [round_.pk]
    assert client.get(f"{URL}{foreign.pk}/").status_code == 404

    client.force_login(make_user(is_staff=True))
    assert [r["id"] for r in client.get(URL).json()["results"]] == [foreign.pk, round_.pk]
    assert [r["id"] for r in client.get(URL, {"project": other.pk}).json()["results"]] == [
        foreign.pk
    ]

    client.logout()
    assert client.get(URL).status_code in (401, 403)


def test_actions_drive_the_state_machine(
    client, project, setup, make_member, django_capture_on_commit_callbacks
):
    client.force_login(make_member(Role.ADMIN))
    with django_capture_on_commit_callbacks(execute=False):
        round_id = client.post(
            URL, launch_body(project, setup), content_type="application/json"
        ).json()["id"]
    cancelled = client.post(f"{URL}{round_id}/cancel/")
    assert cancelled.status_code == 200
    assert (cancelled.json()["state"], cancelled.json()["failed_state"]) == (
        "cancelled",
        "generating",
    )
    assert TrainingJob.objects.get().status == JobStatus.CANCELLED
    again = client.post(f"{URL}{round_id}/cancel/")
    assert again.status_code == 400 and "is not running" in again.json()["detail"]

    with django_capture_on_commit_callbacks(execute=False):
        resumed = client.post(f"{URL}{round_id}/resume/")
    assert resumed.json()["state"] == "generating"
    refused = client.post(f"{URL}{round_id}/move-on/")
    assert refused.status_code == 400 and "not annotating" in refused.json()["detail"]
    assert client.post(f"{URL}{round_id}/next/").status_code == 400

    tuned = make_version(project, "tuned", parent_id=setup["policy"].pk, method="ppo")
    AlignmentRound.objects.filter(pk=round_id).update(state=RoundState.DONE, result_version=tuned)
    with django_capture_on_commit_callbacks(execute=False):
        following = client.post(f"{URL}{round_id}/next/")
    assert following.status_code == 201
    assert (following.json()["number"], following.json()["policy"]) == (2, tuned.pk)
    assert TrainingJob.objects.filter(kind=JobKind.GENERATE, model_version=tuned).exists()
