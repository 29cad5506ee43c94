"""Imports and task creation on PostgreSQL write without per-row foreign-key triggers
(feedback/services/bulk.py): what they reference stays locked until they commit, the checks come
back on afterwards, and a database role that may not turn them off imports with them."""

import json
import threading

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask, Completion, ModelVersion, Prompt
from feedback.services import imports
from feedback.services.bulk import may_skip_triggers
from feedback.services.imports import import_jsonl
from tests.conftest import requires_services

pytestmark = requires_services


def import_completion(project_id: int, prompt: str, model: str):
    """Import one completion of `prompt` by `model`, both found or created by the import."""
    line = json.dumps({"prompt": prompt, "completion": "an answer", "model": model})
    return import_jsonl(project_id=project_id, user_id=None, format="completions", lines=[line])


def replication_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        return cursor.fetchone()[0]


def assert_undeletable_until_commit(write, rows) -> None:
    """Run `write` in another thread's open transaction; meanwhile deleting any of `rows`
    ((model, id) pairs) must wait on its locks. Without them the deletes go through, and the
    commit would leave rows pointing at nothing."""
    written, release, errors = threading.Event(), threading.Event(), []

    def writer() -> None:
        try:
            with transaction.atomic():
                write()
                assert replication_role() == "origin"
                written.set()
                release.wait(10)
        except Exception as error:  # noqa: BLE001 - asserted on below
            errors.append(error)
        finally:
            written.set()
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert written.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
            for model, pk in rows:
                with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
                    cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE id = %s", [pk])
            cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        thread.join()
    assert not errors


def test_rows_an_import_references_cannot_be_deleted_until_it_commits(transactional_db):
    project = services.create_project(name="references")
    version = services.create_model_version(project_id=project.pk, name="m1")
    prompt = services.create_prompt(project_id=project.pk, text="an existing prompt")
    assert_undeletable_until_commit(
        lambda: import_completion(project.pk, "an existing prompt", "m1"),
        [(ModelVersion, version.pk), (Prompt, prompt.pk)],
    )
    completion = Completion.objects.get()
    assert (completion.prompt_id, completion.model_version_id) == (prompt.pk, version.pk)


@pytest.mark.django_db
def test_the_checks_are_back_on_after_an_import(project):
    assert may_skip_triggers()  # the test database's owner is a superuser
    with transaction.atomic():
        import_completion(project.pk, "q", "m")
        assert replication_role() == "origin"
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(IntegrityError), transaction.atomic():
            Completion.objects.create(prompt_id=Prompt.objects.get().pk + 1000, text="orphan")


@pytest.mark.django_db
def test_a_role_that_may_not_skip_the_checks_imports_with_them(project):
    with connection.cursor() as cursor:
        # Rolled back with the test's transaction, like everything else here.
        cursor.execute("CREATE ROLE arbiter_without_superuser NOSUPERUSER")
        cursor.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO arbiter_without_superuser")
        cursor.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO arbiter_without_superuser")
        cursor.execute("SET ROLE arbiter_without_superuser")
    try:
        assert not may_skip_triggers()
        result = import_completion(project.pk, "q", "m")
        assert result.created == {"prompts": 1, "model_versions": 1, "completions": 1}
        assert replication_role() == "origin"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def test_a_prompt_written_meanwhile_by_someone_else_is_a_conflict_and_nothing_is_kept(
    project, monkeypatch
):
    """A prompt committed to the project between the import's lookup and its write (simulated:
    the lookup misses it) breaks the unique constraint: the import answers with a conflict to
    retry, not a database error, and keeps nothing."""
    services.create_prompt(project_id=project.pk, text="q1")
    monkeypatch.setattr(imports.ImportWriter, "known_prompt_ids", lambda *a, **k: {})
    lines = [json.dumps({"prompt": p, "chosen": "yes", "rejected": "no"}) for p in ("q0", "q1")]
    counts = (Prompt.objects.count(), Completion.objects.count())
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, format="trl", lines=lines)
    assert refused.value.code == "conflict"
    assert "prompt_unique_per_project" in refused.value.message
    assert (Prompt.objects.count(), Completion.objects.count()) == counts
    assert replication_role() == "origin"


def test_outputs_that_new_tasks_show_cannot_be_deleted_until_they_commit(transactional_db):
    project = services.create_project(name="task references")
    prompt = services.create_prompt(project_id=project.pk, text="q")
    answers = [services.create_completion(prompt_id=prompt.pk, text=t) for t in ("a", "b")]
    assert_undeletable_until_commit(
        lambda: services.create_tasks_from_completions(project_id=project.pk, mode="pairwise"),
        [(Completion, answers[1].pk), (Prompt, prompt.pk)],
    )
    (task,) = AnnotationTask.objects.all()
    assert sorted(task.items.values_list("completion_id", flat=True)) == [a.pk for a in answers]
