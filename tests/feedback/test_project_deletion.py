"""Deleting a project: every row of it goes, in one transaction, and nothing of another project."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from feedback import services
from feedback.errors import ServiceError
from feedback.models import (
    Adjudication,
    AnnotationTask,
    Assignment,
    Completion,
    ExportSnapshot,
    Judgment,
    ModelVersion,
    PreferencePair,
    Project,
    Prompt,
)
from feedback.models.judgments import AdjudicationAction
from feedback.pairs import PairPolicy
from feedback.services.exports import export_pairs_to_file
from feedback.services.imports import import_jsonl
from feedback.services.invitations import create_invitation
from feedback.services.pairs import derive_pairs
from feedback.services.project_deletion import delete_project, owned_ids_sql, ownership
from feedback.services.projects import remove_member
from feedback.services.tasks import create_tasks_from_completions
from feedback.services.tokens import issue_token
from tests.training.builders import (
    answer,
    judge,
    make_prompt_set,
    make_round,
    make_version,
    trained_version,
)
from training.models import AlignmentRound, JobStatus, RoundDefaults, RoundState, TrainingJob

pytestmark = pytest.mark.django_db


def filled(make_member, name: str) -> Project:
    """A project with a row in every table a project owns."""
    project = services.create_project(name=name)
    annotator = make_member(role="annotator", project_=project)
    battles = [
        {
            "model_a": "m1",
            "model_b": "m2",
            "winner": w,
            "prompt": f"{name} Q{n}",
            "response_a": f"a{n}",
            "response_b": f"b{n}",
        }
        for n, w in enumerate(["model_a", "model_b", "tie"])
    ]
    import_jsonl(project_id=project.pk, user_id=None, lines=[json.dumps(b) for b in battles])
    create_invitation(project_id=project.pk, role="annotator", created_by_id=None)
    remove_member(project_id=project.pk, user_id=make_member(role="annotator", project_=project).pk)
    policy = make_version(project, "policy")
    prompt_set, prompts = make_prompt_set(project, n=2)
    other = make_version(project, "other")
    for prompt in prompts:
        answer(prompt, policy), answer(prompt, other)
    create_tasks_from_completions(project_id=project.pk, mode="pairwise")
    mine = AnnotationTask.objects.filter(project=project, import_batch__isnull=True)
    for task in mine:
        judge(task, annotator, "a")
    Adjudication.objects.create(
        task=mine[0],
        reviewer=annotator,
        action=AdjudicationAction.ACCEPT,
        accepted_judgment=mine[0].judgments.first(),
    )
    Assignment.objects.create(
        task=mine[1],
        annotator=make_member(role="annotator", project_=project),
        leased_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=1),
        shown_order=[],
    )
    RoundDefaults.objects.create(project=project)
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="majority"))
    round_ = make_round(project, policy, prompt_set, state=RoundState.DONE)
    TrainingJob.objects.create(
        project=project,
        kind="dpo",
        model_version=policy,
        alignment_round=round_,
        status=JobStatus.SUCCEEDED,
    )
    export_pairs_to_file(project_id=project.pk)
    return project


def owned_rows(project_id: int) -> dict[str, int]:
    owners = dict(ownership())
    counts = {}
    with connection.cursor() as cursor:
        for model in owners:
            cursor.execute(
                f"SELECT count(*) FROM ({owned_ids_sql(model, owners)}) owned", [project_id]
            )
            counts[model._meta.label] = cursor.fetchone()[0]
    return counts


def test_deletes_every_row_of_the_project_and_nothing_of_another(
    make_member, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.ARTIFACT_ROOT = tmp_path
    doomed, kept = filled(make_member, "doomed"), filled(make_member, "kept")
    before = owned_rows(doomed.pk)
    # Every table a project owns has rows here, so the test covers each delete.
    assert all(before.values()), before
    kept_before = owned_rows(kept.pk)
    export = ExportSnapshot.objects.get(project=doomed)
    kept_export = ExportSnapshot.objects.get(project=kept)
    assert tmp_path in (tmp_path / export.path).parents

    with django_capture_on_commit_callbacks(execute=True):
        deleted = delete_project(project_id=doomed.pk)

    assert deleted.rows == before
    assert deleted.summary() == (
        f"Project 'doomed' deleted with {before['feedback.Prompt']} prompts, "
        f"{before['feedback.Completion']} outputs, {before['feedback.AnnotationTask']} tasks, "
        f"{before['feedback.Judgment']} judgments, {before['feedback.PreferencePair']} pairs, "
        f"{before['feedback.ModelVersion']} model versions, 1 round."
    )
    assert not any(owned_rows(doomed.pk).values())
    assert owned_rows(kept.pk) == kept_before
    assert not Project.objects.filter(pk=doomed.pk).exists()
    # Its files went after the commit; the other project's stayed.
    assert not (tmp_path / export.path).exists()
    assert (tmp_path / kept_export.path).exists()


def test_refused_while_a_round_is_under_way(make_member):
    project = filled(make_member, "busy")
    policy = ModelVersion.objects.get(project=project, name="policy")
    prompt_set = AlignmentRound.objects.get(project=project).prompt_set
    make_round(project, policy, prompt_set, state=RoundState.ANNOTATING)
    before = owned_rows(project.pk)
    with pytest.raises(ServiceError, match="Round 2 of this project is under way") as refused:
        delete_project(project_id=project.pk)
    assert refused.value.code == "conflict"
    assert owned_rows(project.pk) == before
    make_round(project, policy, prompt_set, state=RoundState.TRAINING_POLICY)
    with pytest.raises(ServiceError) as refused:
        delete_project(project_id=project.pk)
    assert refused.value.message == (
        "Rounds 2, 3 of this project are under way; cancel them first. Nothing was deleted."
    )


def test_refused_while_a_job_is_queued(make_member):
    project = filled(make_member, "queued")
    TrainingJob.objects.create(
        project=project,
        kind="dpo",
        model_version=ModelVersion.objects.get(name="policy", project=project),
    )
    with pytest.raises(ServiceError, match="queued or running"):
        delete_project(project_id=project.pk)
    assert Project.objects.filter(pk=project.pk).exists()


def test_a_reference_from_another_project_stops_it_whole(make_member):
    doomed, other = filled(make_member, "doomed"), filled(make_member, "other")
    # No service makes such a row; the database's checks still keep it from dangling.
    outsider = Completion.objects.filter(prompt__project=other).first()
    outsider.model_version = ModelVersion.objects.get(project=doomed, name="policy")
    outsider.save(update_fields=["model_version"])
    before = owned_rows(doomed.pk)
    with pytest.raises(ServiceError, match="Rows outside this project refer to it"):
        delete_project(project_id=doomed.pk)
    assert owned_rows(doomed.pk) == before


def test_an_unknown_project_is_not_found():
    with pytest.raises(ServiceError) as missing:
        delete_project(project_id=987654)
    assert missing.value.code == "not_found"


def test_the_settings_page_asks_for_the_name(client, make_member):
    project = filled(make_member, "Typed")
    client.force_login(make_member(role="admin", project_=project))
    url = f"/insights/projects/{project.pk}/settings/"
    wrong = client.post(url, {"action": "delete_project", "name": "typed"})
    assert wrong.status_code == 422
    assert "it does not match; type &#x27;Typed&#x27; exactly" in wrong.content.decode()
    assert Project.objects.filter(pk=project.pk).exists()

    policy = ModelVersion.objects.get(project=project, name="policy")
    running = make_round(
        project, policy, AlignmentRound.objects.get(project=project).prompt_set, state="generating"
    )
    refused = client.post(url, {"action": "delete_project", "name": "Typed"})
    assert refused.status_code == 422
    assert "Round 2 of this project is under way; cancel it first." in refused.content.decode()
    AlignmentRound.objects.filter(pk=running.pk).update(state=RoundState.CANCELLED)

    done = client.post(url, {"action": "delete_project", "name": "Typed"}, follow=True)
    assert done.redirect_chain[-1][0] == "/"
    assert "Project &#x27;Typed&#x27; deleted with" in done.content.decode()
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Prompt.objects.filter(project_id=project.pk).exists()


def test_the_api_deletes_for_admins(make_member):
    project = filled(make_member, "api")
    pairs = PreferencePair.objects.filter(project=project).count()
    admin = make_member(role="admin", project_=project)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user_id=admin.pk, name='t').key}")
    response = client.delete(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 200
    assert response.data["rows"]["feedback.PreferencePair"] == pairs
    assert response.data["detail"].startswith("Project 'api' deleted with")
    assert not Judgment.objects.filter(task__project_id=project.pk).exists()


def test_the_admin_deletes_through_the_service(client, make_member, make_user):
    project, busy = filled(make_member, "admin"), filled(make_member, "busy")
    policy = ModelVersion.objects.get(project=busy, name="policy")
    make_round(
        busy, policy, AlignmentRound.objects.get(project=busy).prompt_set, state="generating"
    )
    client.force_login(make_user(is_staff=True, is_superuser=True))
    page = client.get(f"/admin/feedback/project/{project.pk}/delete/")
    assert "admin and everything in it" in page.content.decode()
    client.post(f"/admin/feedback/project/{project.pk}/delete/", {"post": "yes"})
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Completion.objects.filter(prompt__project_id=project.pk).exists()
    assert 'value="delete_selected"' not in client.get("/admin/feedback/project/").content.decode()
    refused = client.post(
        f"/admin/feedback/project/{busy.pk}/delete/", {"post": "yes"}, follow=True
    )
    said = [str(m) for m in refused.context["messages"]]
    assert said[-1].startswith("Round 2 of this project is under way"), said
    assert Project.objects.filter(pk=busy.pk).exists()


def test_an_empty_project_says_so():
    project = services.create_project(name="empty")
    assert delete_project(project_id=project.pk).summary() == "Project 'empty' deleted."


def test_only_what_its_jobs_wrote_goes_with_a_project(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """A version's adapter path is never removed as such: an import may name another project's
    folder, or the artifact root itself. The project's jobs' folders go (trained adapters are in
    them)."""
    settings.ARTIFACT_ROOT = tmp_path
    doomed, kept = services.create_project(name="doomed"), services.create_project(name="kept")
    mine = trained_version(doomed, make_version(doomed, "base"), "mine")
    theirs = trained_version(kept, make_version(kept, "base"), "theirs")
    # (An import refuses such paths now; versions imported before may hold them.)
    make_version(doomed, "copy", adapter_path=theirs.adapter_path)
    make_version(doomed, "everything", adapter_path=str(tmp_path))
    with django_capture_on_commit_callbacks(execute=True):
        delete_project(project_id=doomed.pk)
    assert not Path(mine.adapter_path).parent.exists()  # the job's folder
    assert Path(theirs.adapter_path).is_dir() and tmp_path.is_dir()
