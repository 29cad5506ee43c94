"""Imports on SQLite, the demo's database: the suite runs on PostgreSQL, whose imports take their
own path (COPY, ids reserved from sequences), so the SQLite path runs here in a subprocess."""

from tests.conftest import run_on_sqlite

SCRIPT = """
import json
from feedback import services
from feedback.errors import ServiceError
from feedback.models import Completion, Judgment, PreferencePair, Prompt
from feedback.services import imports

imports.FIRST_CHUNK_LINES = imports.CHUNK_LINES = 2  # prompts repeat across chunks
project = services.create_project(name="sqlite", modes=("pairwise",))
trl = [
    {"prompt": "q1", "chosen": "yes", "rejected": "no"},
    {"prompt": "q2", "chosen": "sure", "rejected": "never"},
    {"prompt": "q1", "chosen": "again", "rejected": "nope", "margin": 2.0},
]
battles = [
    {"model_a": "m1", "model_b": "m2", "winner": winner, "prompt": "q2",
     "response_a": "a says", "response_b": "b says"}
    for winner in ("model_a", "tie", "model_b")
]
created = [
    imports.import_jsonl(project_id=project.pk, user_id=None, format=format,
                         lines=[json.dumps(line) for line in lines]).created
    for format, lines in (("trl", trl), ("arena", battles))
]
before = (Prompt.objects.count(), Completion.objects.count(), PreferencePair.objects.count())
try:
    imports.import_jsonl(project_id=project.pk, user_id=None, format="trl",
                         lines=[json.dumps(line) for line in trl] + ["{not json"])
    refused = None
except ServiceError as error:
    refused = error.details
after = (Prompt.objects.count(), Completion.objects.count(), PreferencePair.objects.count())
pairs = list(PreferencePair.objects.order_by("id").values_list(
    "prompt__text", "chosen__text", "rejected__text", "margin", "policy"))
print(json.dumps({
    "created": created, "pairs": pairs, "refused": refused, "unchanged": before == after,
    "verdicts": list(Judgment.objects.order_by("id").values_list("choice", flat=True)),
}))
"""


def test_imports_write_the_same_rows_on_sqlite(tmp_path):
    out = run_on_sqlite(tmp_path, SCRIPT)
    assert out["created"] == [
        {"prompts": 2, "completions": 6, "pairs": 3},
        {
            "prompts": 0,
            "model_versions": 2,
            "completions": 6,
            "pairs": 2,
            "tasks": 3,
            "judgments": 3,
        },
    ]
    assert out["pairs"] == [
        ["q1", "yes", "no", 0.0, "import"],
        ["q2", "sure", "never", 0.0, "import"],
        ["q1", "again", "nope", 2.0, "import"],
        ["q2", "a says", "b says", 0.0, "import"],
        ["q2", "b says", "a says", 0.0, "import"],
    ]
    assert out["verdicts"] == ["a", "tie", "b"]
    assert out["refused"] and out["refused"][0].startswith("line 4: not valid JSON")
    assert out["unchanged"]


TASKS_SCRIPT = """
import json
from django.contrib.auth import get_user_model
from feedback import services
from feedback.models import AnnotationTask
from feedback.services import imports

project = services.create_project(name="sqlite tasks", modes=("pairwise", "ranking"))
lines = [json.dumps({"prompt": f"q{q}", "completion": f"{m} on q{q}", "model": m})
         for q in range(2) for m in ("a", "b", "c")]
imports.import_jsonl(project_id=project.pk, user_id=None, format="completions", lines=lines)
made = [services.create_tasks_from_completions(project_id=project.pk, mode=mode).as_json()
        for mode in ("pairwise", "pairwise", "ranking")]
user = get_user_model().objects.create_user("ann", password="pw")
services.add_member(project_id=project.pk, user_id=user.pk)
lease = services.next_task_for(annotator_id=user.pk, project_id=project.pk)
print(json.dumps({
    "made": made,
    "tasks": sorted([t.mode, t.items.count(), t.status] for t in AnnotationTask.objects.all()),
    "served": lease is not None,
}))
"""


def test_tasks_from_outputs_on_sqlite(tmp_path):
    out = run_on_sqlite(tmp_path, TASKS_SCRIPT)
    assert [m["created"] for m in out["made"]] == [6, 0, 2]
    assert out["made"][1]["already_there"] == 6
    assert out["tasks"] == [["pairwise", 2, "open"]] * 6 + [["ranking", 3, "open"]] * 2
    assert out["served"]
