"""The JSON queue endpoints (annotations/queue_api.py): next task and submit."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from feedback import services
from feedback.models import Judgment

pytestmark = pytest.mark.django_db


def api_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client, url, body, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def test_next_then_submit_returns_the_following_task(project, make_member, make_task):
    first, second = make_task(priority=1), make_task()
    user = make_member()
    client = api_client(user)
    response = client.get(reverse("annotations:api_next", args=[project.pk]))
    assert response.status_code == 200 and response["Server-Timing"].startswith("view;dur=")
    task = response.json()["task"]
    assert task["task_id"] == first.pk and task["mode"] == "pairwise"
    assert [o["completion_id"] for o in task["outputs"]] == first.assignments.get().shown_order
    url = reverse("annotations:api_submit", args=[project.pk, first.pk])
    body = {"kind": "pairwise", "choice": "a", "idempotency_key": task["idempotency_key"]}
    submitted = post_json(client, url, body)
    assert submitted.status_code == 201
    assert submitted.json()["task"]["task_id"] == second.pk
    retry = post_json(client, url, body)
    assert retry.json()["judgment_id"] == submitted.json()["judgment_id"]
    assert Judgment.objects.filter(annotator=user).count() == 1


def test_a_lease_shows_its_prompt_text_or_chat(project, make_member, make_task):
    text_task = make_task(priority=1)
    chat = [{"role": "user", "content": "Hi <b>there</b>"}, {"role": "assistant", "content": "?"}]
    prompt = services.create_prompt(project_id=project.pk, messages=chat)
    answers = [services.create_completion(prompt_id=prompt.pk, text=t).pk for t in ("x", "y")]
    chat_task = services.create_task(prompt_id=prompt.pk, completion_ids=answers)
    client = api_client(make_member())
    first = client.get(reverse("annotations:api_next", args=[project.pk])).json()["task"]
    assert first["prompt"] == {"text": text_task.prompt.text, "messages": None}
    url = reverse("annotations:api_submit", args=[project.pk, text_task.pk])
    body = {"kind": "pairwise", "choice": "tie", "idempotency_key": first["idempotency_key"]}
    second = post_json(client, url, body).json()["task"]
    assert second["task_id"] == chat_task.pk
    assert second["prompt"]["messages"] == chat
    assert {o["completion_id"]: o["text"] for o in second["outputs"]} == dict(
        zip(answers, ["x", "y"], strict=True)
    )


def test_rankings_and_ratings_go_through_as_json(project, make_member, make_task):
    task = make_task(n=3, mode="ranking")
    user = make_member()
    client = api_client(user)
    lease = client.get(reverse("annotations:api_next", args=[project.pk])).json()["task"]
    ids = [o["completion_id"] for o in lease["outputs"]]
    body = {
        "kind": "ranking",
        "ranking": [[ids[1]], [ids[0], ids[2]]],
        "ratings": {str(cid): 4 for cid in ids},
        "idempotency_key": lease["idempotency_key"],
    }
    response = post_json(
        client, reverse("annotations:api_submit", args=[project.pk, task.pk]), body
    )
    assert response.status_code == 201 and response.json()["task"] is None
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.ranking == [[ids[1]], [ids[0], ids[2]]]
    assert judgment.ratings == {str(cid): 4 for cid in ids}


def test_errors_come_back_as_json_with_a_status(project, make_member, make_task, make_user):
    task = make_task()
    assert Client().get(reverse("annotations:api_next", args=[project.pk])).status_code == 401
    outsider = api_client(make_user())
    refused = outsider.get(reverse("annotations:api_next", args=[project.pk]))
    assert refused.status_code == 403 and "not a member" in refused.json()["error"]
    client = api_client(make_member())
    url = reverse("annotations:api_submit", args=[project.pk, task.pk])
    not_leased = post_json(client, url, {"kind": "pairwise", "choice": "a", "idempotency_key": "k"})
    assert not_leased.status_code == 403 and "not assigned to you" in not_leased.json()["error"]
    client.get(reverse("annotations:api_next", args=[project.pk]))
    invalid = post_json(client, url, {"kind": "pairwise", "choice": "left", "idempotency_key": "k"})
    assert invalid.status_code == 400 and "Choose A, B" in invalid.json()["error"]
    answer = {"kind": "pairwise", "choice": "a", "idempotency_key": "k"}
    for extra, message in [
        ({"flags": [{"a": 1}]}, "Flags are a list of names"),
        ({"flags": [1, "unsafe"]}, "Flags are a list of names"),
        ({"rationale": "nul\u0000here"}, "NUL character"),
    ]:
        refused = post_json(client, url, {**answer, **extra})
        assert refused.status_code == 400 and message in refused.json()["error"], extra
    garbled = client.post(url, "{not json", content_type="application/json")
    assert garbled.status_code == 400 and garbled.json()["error"] == "The body is not JSON."
    for body, message in [
        ([1, 2], "Send a JSON object."),
        (
            {"kind": "pairwise", "idempotency_key": "k", "colour": "red"},
            "Unknown fields ['colour']",
        ),
        (
            {"kind": "pairwise", "idempotency_key": "k", "ranking": "a>b"},
            "'ranking' must be a list",
        ),
        ({"kind": "pairwise", "idempotency_key": "k", "time_spent_ms": True}, "'time_spent_ms'"),
        ({"kind": "pairwise"}, "idempotency_key"),
    ]:
        refused = post_json(client, url, body)
        assert refused.status_code == 400 and message in refused.json()["error"], body
    assert not Judgment.objects.exists()


def test_json_submit_needs_the_csrf_token(project, make_member, make_task):
    task = make_task()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member())
    client.get(reverse("annotations:api_next", args=[project.pk]))
    url = reverse("annotations:api_submit", args=[project.pk, task.pk])
    body = {"kind": "pairwise", "choice": "a", "idempotency_key": "k"}
    assert post_json(client, url, body).status_code == 403
    client.get(reverse("annotations:work", args=[project.pk]))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    assert post_json(client, url, body, HTTP_X_CSRFTOKEN=token).status_code == 201
