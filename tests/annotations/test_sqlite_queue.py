"""Annotating on SQLite, the demo's database: leases there are taken step by step (PostgreSQL takes
them in one statement), so the annotator's page and the JSON queue run here in a subprocess."""

from tests.conftest import run_on_sqlite

SCRIPT = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from feedback import services
from feedback.models import Judgment

project = services.create_project(name="sqlite queue", modes=("pairwise",), overlap=1)
prompt = services.create_prompt(project_id=project.pk, text="Name a **fruit**")
tasks = []
for n in range(2):
    ids = [
        services.create_completion(
            prompt_id=prompt.pk, text=f"{word} {n}", generation_settings=settings
        ).pk
        for word, settings in (("apple", {"finish_reason": "length"}), ("stone", {}))
    ]
    tasks.append(services.create_task(prompt_id=prompt.pk, completion_ids=ids).pk)
user = get_user_model().objects.create_user("annotator", password="unused")
services.add_member(project_id=project.pk, user_id=user.pk)
client = Client(HTTP_HOST="localhost")
client.force_login(user)

page = client.get(f"/projects/{project.pk}/work/", follow=True).content.decode()
api = f"/annotate/api/projects/{project.pk}/"
first = client.get(api + "next/").json()["task"]
again = client.get(api + "next/").json()["task"]
answered = []
task = first
while task is not None:
    apple = next(o for o in task["outputs"] if o["text"].startswith("apple"))
    choice = "a" if apple["position"] == 0 else "b"  # choices name task positions
    response = client.post(
        api + f"tasks/{task['task_id']}/judgment/",
        json.dumps({"kind": "pairwise", "choice": choice,
                    "idempotency_key": task["idempotency_key"]}),
        content_type="application/json",
    )
    answered.append((task["task_id"], response.status_code))
    task = response.json()["task"]
print(json.dumps({
    "tasks": tasks,
    "page_task": f'data-task-id="{first["task_id"]}"' in page,
    "page_cut_off": page.count("Cut off at the length limit"),
    "page_prompt": "<strong>fruit</strong>" in page,
    "first": first, "again": again["task_id"], "answered": answered,
    "chosen": sorted(
        j.task.items.get(position=0 if j.choice == "a" else 1).completion.text
        for j in Judgment.objects.filter(annotator=user)
    ),
}))
"""


def test_an_annotator_works_through_the_queue_on_sqlite(tmp_path):
    out = run_on_sqlite(tmp_path, SCRIPT)
    first = out["first"]
    assert first["task_id"] in out["tasks"] and first["mode"] == "pairwise"
    assert first["prompt"] == {"text": "Name a **fruit**", "messages": None}
    assert sorted(o["text"].split()[0] for o in first["outputs"]) == ["apple", "stone"]
    assert out["page_task"] and out["page_prompt"] and out["page_cut_off"] == 1
    assert out["again"] == first["task_id"]  # the live lease, shown again
    assert sorted(task for task, _ in out["answered"]) == sorted(out["tasks"])
    assert all(status == 201 for _, status in out["answered"]), out["answered"]
    assert out["chosen"] == ["apple 0", "apple 1"]
