"""Taking back an import: what it wrote goes, what people made from it stops the deletion."""

import json

import pytest
from django.db import connection

from feedback import services
from feedback.errors import ServiceError
from feedback.models import (
    AnnotationTask,
    Completion,
    ImportBatch,
    Judgment,
    ModelVersion,
    PairJudgment,
    PreferencePair,
    Prompt,
    PromptSet,
    TaskItem,
)
from feedback.services import import_deletion
from feedback.services.import_deletion import delete_import
from feedback.services.imports import import_jsonl
from feedback.services.tasks import create_tasks_from_completions, delete_untouched_tasks


def imported(project, *records, format="auto", source="file.jsonl"):
    lines = [json.dumps(record) for record in records]
    return import_jsonl(
        project_id=project.pk, user_id=None, lines=lines, format=format, source=source
    ).batch


def battle(n: int, winner: str) -> dict:
    return {
        "model_a": "m1",
        "model_b": "m2",
        "winner": winner,
        "prompt": f"Q{n}",
        "response_a": f"a{n}",
        "response_b": f"b{n}",
    }


@pytest.fixture(params=[True, False], ids=["vouched", "checked"])
def foreign_key_checks(request, monkeypatch):
    """Run each deletion without PostgreSQL's per-row foreign-key checks (as a role that may
    skip them does) and with them; with them, they run before the test ends, so a row left
    pointing at a deleted one fails the test."""
    monkeypatch.setattr(import_deletion, "may_skip_triggers", lambda: request.param)
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_an_import_is_deleted_with_what_it_wrote_and_nothing_else(project, foreign_key_checks):
    kept = imported(project, {"prompt": "Q1", "chosen": "keep", "rejected": "this"})
    battles = imported(
        project, battle(1, "model_a"), battle(2, "tie"), battle(3, "model_b"), source="b.jsonl"
    )
    # Q1 is shared with the first import, which keeps it; Q2 and Q3 were the battles' own.
    PromptSet.objects.create(project=project, name="s").prompts.add(Prompt.objects.get(text="Q3"))
    before = {"completions": Completion.objects.count(), "pairs": PreferencePair.objects.count()}
    assert before == {"completions": 8, "pairs": 3}

    deleted = delete_import(project_id=project.pk, batch_id=battles.pk)
    assert (deleted.prompts, deleted.completions, deleted.pairs, deleted.tasks) == (1, 6, 2, 3)
    assert deleted.kept_prompts == 1  # Q3, in a prompt set; Q1 belonged to the first import
    assert (deleted.model_versions, deleted.kept_model_versions) == (2, 0)  # m1 and m2
    assert deleted.summary() == (
        "Import b.jsonl deleted: 1 prompt, 6 outputs, 2 pairs, 3 battles, 2 model versions; "
        "1 prompt used elsewhere kept."
    )
    assert not ModelVersion.objects.exists()
    assert sorted(Prompt.objects.values_list("text", flat=True)) == ["Q1", "Q3"]
    assert Prompt.objects.get(text="Q3").import_batch_id is None
    assert list(Completion.objects.values_list("text", flat=True).order_by("text")) == [
        "keep",
        "this",
    ]
    assert PreferencePair.objects.get().chosen.text == "keep"
    assert not (
        AnnotationTask.objects.exists()
        or TaskItem.objects.exists()
        or Judgment.objects.exists()
        or PairJudgment.objects.exists()
    )
    assert list(ImportBatch.objects.all()) == [kept]

    with pytest.raises(ServiceError, match="No such import") as error:
        delete_import(project_id=project.pk, batch_id=battles.pk)
    assert error.value.code == "not_found"
    other = services.create_project(name="Other")
    with pytest.raises(ServiceError, match="No such import"):
        delete_import(project_id=other.pk, batch_id=kept.pk)


def test_tasks_made_from_an_imports_outputs_stop_its_deletion(project, foreign_key_checks):
    batch = imported(
        project,
        *({"prompt": "Q", "completion": f"c{n}", "model": f"m{n}"} for n in range(3)),
        format="completions",
    )
    create_tasks_from_completions(project_id=project.pk, mode="pairwise")
    assert AnnotationTask.objects.count() == 3
    with pytest.raises(ServiceError, match=r"^3 tasks show this import's outputs") as error:
        delete_import(project_id=project.pk, batch_id=batch.pk)
    assert error.value.code == "conflict"
    assert Completion.objects.count() == 3 and ImportBatch.objects.exists()

    # Once the untouched tasks are taken back, the import can go.
    assert delete_untouched_tasks(project_id=project.pk) == 3
    deleted = delete_import(project_id=project.pk, batch_id=batch.pk)
    assert (deleted.prompts, deleted.completions, deleted.kept_prompts) == (1, 3, 0)
    assert not Prompt.objects.exists()


def test_an_imports_model_versions_go_with_it_unless_something_else_names_them(
    project, foreign_key_checks
):
    first = imported(
        project,
        *({"prompt": "Q", "completion": f"c{n}", "model": f"m{n}"} for n in (1, 2, 3)),
        format="completions",
        source="a.jsonl",
    )
    # A later import's output names m1, and a version trained from m2 names it as its parent.
    later = imported(
        project, {"prompt": "R", "completion": "r", "model": "m1"}, format="completions"
    )
    m2 = ModelVersion.objects.get(name="m2")
    services.create_model_version(project_id=project.pk, name="m2-tuned", parent_id=m2.pk)
    listed = imported(project, {"name": "v1"}, {"name": "v2"}, format="model_versions")
    assert dict(ModelVersion.objects.values_list("name", "import_batch_id")) == {
        "m1": first.pk,
        "m2": first.pk,
        "m3": first.pk,
        "m2-tuned": None,
        "v1": listed.pk,
        "v2": listed.pk,
    }

    deleted = delete_import(project_id=project.pk, batch_id=first.pk)
    assert (deleted.model_versions, deleted.kept_model_versions) == (1, 2)
    assert deleted.summary() == (
        "Import a.jsonl deleted: 1 prompt, 3 outputs, 1 model version; 2 model versions used "
        "elsewhere kept."
    )
    assert dict(ModelVersion.objects.values_list("name", "import_batch_id")) == {
        "m1": None,
        "m2": None,
        "m2-tuned": None,
        "v1": listed.pk,
        "v2": listed.pk,
    }
    # The later import did not make m1: it stays, holding no outputs once that import goes.
    assert delete_import(project_id=project.pk, batch_id=later.pk).model_versions == 0
    assert ModelVersion.objects.filter(name="m1").exists()
    deleted = delete_import(project_id=project.pk, batch_id=listed.pk)
    assert deleted.summary() == "Import file.jsonl deleted: 2 model versions."
    assert sorted(ModelVersion.objects.values_list("name", flat=True)) == ["m1", "m2", "m2-tuned"]
