"""The annotator and reviewer pages (annotations/views.py): permissions, partial vs page, submit,
idempotent retries, inline errors, CSRF on htmx requests, skip and flag, adjudication."""

import importlib
import json
import re
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from feedback import services
from feedback.models import Adjudication, AnnotationTask, Assignment, Judgment, Role
from feedback.services.imports import import_jsonl

pytestmark = pytest.mark.django_db
mark_imported_tasks = importlib.import_module(
    "feedback.migrations.0016_task_import_batch"
).mark_imported_tasks
HTMX = {"HTTP_HX_REQUEST": "true"}


def client_for(user, **options) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


def work_url(project) -> str:
    return reverse("annotations:work", args=[project.pk])


def submit_url(project, task) -> str:
    return reverse("annotations:submit", args=[project.pk, task.pk])


def lease_key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def test_pages_need_a_signed_in_user(project):
    response = Client().get(work_url(project))
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_an_htmx_request_without_a_session_sends_the_whole_page_to_login(project):
    response = Client().post(
        submit_url(project, type("T", (), {"pk": 1})),
        **HTMX,
        HTTP_HX_CURRENT_URL="http://testserver" + work_url(project),
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login/?next=")


def test_home_lists_projects_with_todays_count_and_open_work(project, make_member, make_task):
    user = make_member()
    make_task(), make_task()
    html = client_for(user).get("/").content.decode()
    assert project.name in html
    assert re.search(r"<dt>Open for you</dt><dd>2</dd>", html)
    assert work_url(project) in html
    assert reverse("annotations:review_list", args=[project.pk]) not in html  # annotators only
    assert reverse("insights:leaderboard", args=[project.pk]) not in html


def test_home_counts_the_annotators_own_judgments_today_and_in_total(
    project, make_member, make_task
):
    user, other = make_member(), make_member()
    tasks = [make_task() for _ in range(3)]
    for annotator, task, key in (
        (user, tasks[0], "u0"),
        (user, tasks[1], "u1"),
        (other, tasks[2], "o"),
    ):
        services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=task.pk,
            data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key=key),
        )
    Judgment.objects.filter(annotator=user, task=tasks[0]).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    html = client_for(user).get("/").content.decode()
    assert re.search(r"<dt>Judged today</dt><dd>1</dd>", html)
    assert re.search(r"<dt>In total</dt><dd>2</dd>", html)


def test_home_leads_reviewers_to_review_the_leaderboard_and_rounds(project, make_member):
    html = client_for(make_member(role="reviewer")).get("/").content.decode()
    assert reverse("annotations:review_list", args=[project.pk]) in html
    assert reverse("insights:leaderboard", args=[project.pk]) in html
    assert reverse("training:round_list", args=[project.pk]) in html
    annotator_html = client_for(make_member()).get("/").content.decode()
    assert reverse("training:round_list", args=[project.pk]) not in annotator_html


def test_non_members_cannot_open_a_projects_queue(project, make_user, make_task):
    make_task()
    assert client_for(make_user()).get(work_url(project)).status_code == 404


def test_the_work_page_shows_outputs_in_the_leased_order_with_canonical_choices(
    project, make_member, make_task
):
    task = make_task()
    user = make_member()
    response = client_for(user).get(work_url(project))
    html = response.content.decode()
    lease = Assignment.objects.get(task=task, annotator=user)
    shown = [
        int(cid)
        for cid in re.findall(r'class="output" id="output-\d" data-completion-id="(\d+)"', html)
    ]
    assert shown == lease.shown_order
    positions = dict(task.items.values_list("completion_id", "position"))
    left_value = re.search(r'id="choice-left" value="(\w)"', html).group(1)
    right_value = re.search(r'id="choice-right" value="(\w)"', html).group(1)
    assert (left_value, right_value) == ("ab"[positions[shown[0]]], "ab"[positions[shown[1]]])
    assert "<html" in html and 'id="help-dialog"' in html  # the full page


def test_htmx_gets_the_partial_and_the_lease_comes_back_until_used(project, make_member, make_task):
    task = make_task()
    make_task()
    client = client_for(make_member())
    first = client.get(work_url(project), **HTMX).content.decode()
    again = client.get(work_url(project), **HTMX).content.decode()
    assert "<html" not in first and f'data-task-id="{task.pk}"' in first
    assert lease_key(first) == lease_key(again)
    assert 'hx-swap-oob="true"' in first  # today's count updates with each swap


def test_submitting_stores_the_judgment_and_swaps_in_the_next_task(project, make_member, make_task):
    first, second = make_task(priority=1), make_task()
    user = make_member()
    client = client_for(user)
    key = lease_key(client.get(work_url(project)).content.decode())
    response = client.post(
        submit_url(project, first),
        {
            "kind": "pairwise",
            "choice": "b",
            "strength": "slight",
            "rationale": "clearer",
            "idempotency_key": key,
            "time_spent_ms": "5120",
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200 and f'data-task-id="{second.pk}"' in html
    assert "1 judged today" in html
    judgment = Judgment.objects.get(task=first, annotator=user)
    assert (judgment.choice, judgment.strength, judgment.rationale, judgment.time_spent_ms) == (
        "b",
        "slight",
        "clearer",
        5120,
    )
    assert judgment.shown_order == Assignment.objects.get(task=first, annotator=user).shown_order


def test_a_retried_submit_stores_one_judgment(project, make_member, make_task):
    task = make_task(priority=1)
    make_task()
    user = make_member()
    client = client_for(user)
    key = lease_key(client.get(work_url(project)).content.decode())
    data = {"kind": "pairwise", "choice": "a", "idempotency_key": key}
    first = client.post(submit_url(project, task), data, **HTMX)
    retry = client.post(submit_url(project, task), data, **HTMX)
    assert first.status_code == retry.status_code == 200
    assert Judgment.objects.filter(annotator=user).count() == 1
    assert Judgment.objects.get(annotator=user).task == task


def test_an_invalid_submission_is_shown_inline_and_nothing_is_stored(
    project, make_member, make_task
):
    task = make_task(n=3, mode="ranking")
    user = make_member()
    client = client_for(user)
    key = lease_key(client.get(work_url(project)).content.decode())
    ids = list(task.items.values_list("completion_id", flat=True))
    response = client.post(
        submit_url(project, task),
        {"kind": "ranking", "ranking": json.dumps([[ids[0]], [ids[1]]]), "idempotency_key": key},
        **HTMX,
    )
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#task-errors" and response["HX-Reswap"] == "innerHTML"
    assert "leaves out completions" in response.content.decode()
    assert not Judgment.objects.exists()


def test_a_task_that_is_no_longer_yours_offers_the_next_one(project, make_member, make_task):
    task = make_task()
    client = client_for(make_member())
    response = client.post(
        submit_url(project, task),
        {"kind": "pairwise", "choice": "a", "idempotency_key": "k"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 409 and response["HX-Retarget"] == "#task-errors"
    assert "not assigned to you" in html and f'hx-get="{work_url(project)}"' in html


def test_without_htmx_an_error_shows_the_same_task_again(project, make_member, make_task):
    task = make_task()
    client = client_for(make_member())
    key = lease_key(client.get(work_url(project)).content.decode())
    response = client.post(submit_url(project, task), {"kind": "pairwise", "idempotency_key": key})
    html = response.content.decode()
    assert response.status_code == 422
    assert "Choose A, B, tie or both bad." in html and f'data-task-id="{task.pk}"' in html


def test_ranking_with_ratings_is_stored_canonically(project, make_member, make_task):
    task = make_task(n=3, mode="ranking")
    user = make_member()
    client = client_for(user)
    html = client.get(work_url(project)).content.decode()
    assert 'name="rating-' in html  # the project enables ratings: offered next to the ranking
    ids = list(task.items.values_list("completion_id", flat=True))
    ranking = [[ids[2]], [ids[0], ids[1]]]
    client.post(
        submit_url(project, task),
        {
            "kind": "ranking",
            "ranking": json.dumps(ranking),
            "idempotency_key": lease_key(html),
            **{f"rating-{cid}": str(score) for cid, score in zip(ids, (3, 3, 6), strict=True)},
        },
        **HTMX,
    )
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.ranking == ranking
    assert judgment.ratings == {str(ids[0]): 3, str(ids[1]): 3, str(ids[2]): 6}


def test_rating_tasks_take_a_likert_score_per_output(project, make_member, make_task):
    task = make_task(n=2, mode="rating")
    user = make_member()
    client = client_for(user)
    html = client.get(work_url(project)).content.decode()
    ids = list(task.items.values_list("completion_id", flat=True))
    assert all(f'name="rating-{cid}"' in html for cid in ids)
    client.post(
        submit_url(project, task),
        {
            "kind": "rating",
            "idempotency_key": lease_key(html),
            f"rating-{ids[0]}": "7",
            f"rating-{ids[1]}": "2",
        },
        **HTMX,
    )
    assert Judgment.objects.get(annotator=user).ratings == {str(ids[0]): 7, str(ids[1]): 2}


def test_csrf_holds_for_htmx_requests(project, make_member, make_task):
    task = make_task()
    client = client_for(make_member(), enforce_csrf_checks=True)
    page = client.get(work_url(project)).content.decode()
    data = {"kind": "pairwise", "choice": "tie", "idempotency_key": lease_key(page)}
    refused = client.post(submit_url(project, task), data, **HTMX)
    assert refused.status_code == 403 and not Judgment.objects.exists()
    token = re.search(r'hx-headers=\'\{"x-csrftoken": "([^"]+)"\}\'', page).group(1)
    accepted = client.post(submit_url(project, task), data, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert accepted.status_code == 200 and Judgment.objects.count() == 1


def test_skip_and_flag_give_the_task_to_someone_else(project, make_member, make_task):
    skipped, flagged = make_task(priority=1), make_task()
    user, other = make_member(), make_member()
    client = client_for(user)
    client.get(work_url(project))
    skip_url = reverse("annotations:skip", args=[project.pk, skipped.pk])
    response = client.post(skip_url, {"reason": "skip", "note": "not my field"}, **HTMX)
    assert f'data-task-id="{flagged.pk}"' in response.content.decode()
    flag_url = reverse("annotations:skip", args=[project.pk, flagged.pk])
    response = client.post(flag_url, {"reason": "unsafe", "note": "asks for harm"}, **HTMX)
    assert "All done for now" in response.content.decode()
    assert set(
        Assignment.objects.filter(annotator=user).values_list("status", "skip_reason", "skip_note")
    ) == {("skipped", "skip", "not my field"), ("skipped", "unsafe", "asks for harm")}
    assert services.next_task_for(annotator_id=other.pk, project_id=project.pk).task == skipped


def test_a_flag_needs_a_known_reason(project, make_member, make_task):
    task = make_task()
    client = client_for(make_member())
    client.get(work_url(project))
    response = client.post(
        reverse("annotations:skip", args=[project.pk, task.pk]), {"reason": "boring"}, **HTMX
    )
    assert response.status_code == 422
    assert Assignment.objects.get(task=task).status == "leased"


def judged_task(project, make_member, make_task, choices):
    task = make_task(judgments_wanted=len(choices))
    for index, choice in enumerate(choices):
        user = make_member()
        services.next_task_for(annotator_id=user.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=user.pk,
            task_id=task.pk,
            data=services.JudgmentInput(
                kind="pairwise", choice=choice, idempotency_key=f"k{index}"
            ),
        )
    return task


def test_only_reviewers_and_admins_see_reviews(project, make_member, make_task, make_user):
    task = judged_task(project, make_member, make_task, ["a"])
    urls = [
        reverse("annotations:review_list", args=[project.pk]),
        reverse("annotations:review_task", args=[project.pk, task.pk]),
    ]
    for url in urls:
        assert client_for(make_member()).get(url).status_code == 403
        assert client_for(make_member(role=Role.REVIEWER)).get(url).status_code == 200
        assert client_for(make_member(role=Role.ADMIN)).get(url).status_code == 200
        assert client_for(make_user(is_staff=True)).get(url).status_code == 200


def test_the_review_list_flags_disagreements(project, make_member, make_task):
    agreed = judged_task(project, make_member, make_task, ["a", "a"])
    disputed = judged_task(project, make_member, make_task, ["a", "tie"])
    client = client_for(make_member(role=Role.REVIEWER))
    url = reverse("annotations:review_list", args=[project.pk])
    everything = client.get(url).content.decode()
    assert f"#{agreed.pk}<" in everything and f"#{disputed.pk}<" in everything
    assert everything.count("Disagree</span>") == 1
    only = client.get(url, {"show": "disagreements"}).content.decode()
    assert f"#{disputed.pk}<" in only and f"#{agreed.pk}<" not in only


def test_the_review_list_leaves_out_imported_battles(project, make_member, make_task):
    judged = judged_task(project, make_member, make_task, ["a"])
    battle = {"model_a": "m1", "model_b": "m2", "winner": "model_a", "prompt": "Imported?"}
    line = json.dumps({**battle, "response_a": "one", "response_b": "two"})
    import_jsonl(project_id=project.pk, user_id=None, lines=[line], format="arena")
    imported = AnnotationTask.objects.get(prompt__text="Imported?")
    client = client_for(make_member(role=Role.REVIEWER))
    page = client.get(reverse("annotations:review_list", args=[project.pk])).content.decode()
    assert f"#{judged.pk}<" in page and f"#{imported.pk}<" not in page
    assert "Imported Chatbot Arena battles are not listed" in page
    # Battles imported before tasks recorded their batch are found by their judgments' keys.
    AnnotationTask.objects.filter(pk=imported.pk).update(import_batch=None)
    mark_imported_tasks(django_apps, None)
    assert AnnotationTask.objects.get(pk=imported.pk).import_batch_id is not None
    assert AnnotationTask.objects.get(pk=judged.pk).import_batch_id is None


def test_flagged_tasks_reach_the_reviewers_with_reason_and_note(project, make_member, make_task):
    flagged, skipped = make_task(priority=1), make_task()
    annotator = make_member(username="flagger")
    services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    services.skip_task(
        annotator_id=annotator.pk, task_id=flagged.pk, reason="unsafe", note="slur in B"
    )
    services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    services.skip_task(annotator_id=annotator.pk, task_id=skipped.pk, reason="skip")
    client = client_for(make_member(role=Role.REVIEWER))
    url = reverse("annotations:review_list", args=[project.pk])
    listed = client.get(url, {"show": "flagged"}).content.decode()
    assert f"#{flagged.pk}<" in listed and "1 flag<" in listed
    assert f"#{skipped.pk}<" not in listed  # a plain skip is not a flag
    page = client.get(
        reverse("annotations:review_task", args=[project.pk, flagged.pk])
    ).content.decode()
    assert "Unsafe" in page and "slur in B" in page and "flagger" in page


def test_an_answer_given_with_a_flag_reaches_the_reviewers(project, make_member, make_task):
    flagged, plain = make_task(priority=1), make_task()
    annotator = make_member()
    for task, flags in ((flagged, ["broken", "unsafe"]), (plain, [])):
        services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=task.pk,
            data=services.JudgmentInput(
                kind="pairwise", choice="a", flags=flags, idempotency_key=f"k{task.pk}"
            ),
        )
    client = client_for(make_member(role=Role.REVIEWER))
    url = reverse("annotations:review_list", args=[project.pk])
    listed = client.get(url, {"show": "flagged"}).content.decode()
    assert f"#{flagged.pk}<" in listed and "1 flag<" in listed
    assert f"#{plain.pk}<" not in listed


def test_a_reviewer_accepts_or_overrides_and_who_and_when_is_recorded(
    project, make_member, make_task
):
    task = judged_task(project, make_member, make_task, ["a", "b"])
    reviewer = make_member(role=Role.REVIEWER)
    client = client_for(reviewer)
    url = reverse("annotations:review_task", args=[project.pk, task.pk])
    page = client.get(url).content.decode()
    assert "Annotators disagree" in page
    judgment = Judgment.objects.filter(task=task).first()
    response = client.post(url, {"action": "accept", "judgment_id": judgment.pk}, **HTMX)
    assert (
        "Accepted" in response.content.decode() and reviewer.username in response.content.decode()
    )
    adjudication = Adjudication.objects.get(task=task)
    assert (adjudication.reviewer, adjudication.accepted_judgment) == (reviewer, judgment)
    client.post(url, {"action": "override", "choice": "tie", "note": "both fine"}, **HTMX)
    adjudication.refresh_from_db()
    assert (adjudication.action, adjudication.choice, adjudication.note) == (
        "override",
        "tie",
        "both fine",
    )
    assert adjudication.updated_at >= adjudication.created_at


def test_an_invalid_override_is_refused_inline(project, make_member, make_task):
    task = judged_task(project, make_member, make_task, ["a"])
    client = client_for(make_member(role=Role.REVIEWER))
    url = reverse("annotations:review_task", args=[project.pk, task.pk])
    response = client.post(url, {"action": "override", "choice": "c"}, **HTMX)
    assert (
        response.status_code == 422
        and "Override with A, B, tie or both bad." in response.content.decode()
    )
    assert not Adjudication.objects.exists()


def test_a_reviewer_makes_the_adjudicated_answer_gold_from_the_review_page(
    project, make_member, make_task
):
    task = judged_task(project, make_member, make_task, ["a", "b"])
    client = client_for(make_member(role=Role.REVIEWER))
    url = reverse("annotations:review_task", args=[project.pk, task.pk])
    assert "Use as gold answer" not in client.get(url).content.decode()  # nothing decided yet
    early = client.post(url, {"gold": "1"}, **HTMX)
    assert early.status_code == 422 and "Adjudicate the task first" in early.content.decode()

    client.post(url, {"action": "override", "choice": "b"}, **HTMX)
    made = client.post(url, {"gold": "1"}, **HTMX).content.decode()
    assert "This decision is the task's gold answer" in made
    listed = client.get(reverse("annotations:review_list", args=[project.pk])).content.decode()
    assert '<span class="badge ok">Gold</span>' in listed
    task.refresh_from_db()
    assert (task.is_gold, task.gold_answer) == (True, {"choice": "b"})
    undone = client.post(url, {"gold": "0"}, **HTMX).content.decode()
    assert "Use as gold answer" in undone
    task.refresh_from_db()
    assert not task.is_gold


def test_undo_without_javascript_redirects_and_refuses_inline_with_it(
    project, make_member, make_task
):
    make_task()
    annotator = make_member()
    client = client_for(annotator)
    url = reverse("annotations:undo", args=[project.pk])
    nothing = client.post(url, **HTMX)
    assert nothing.status_code == 422
    assert "no judgment in this project" in nothing.content.decode()
    page = client.get(work_url(project)).content.decode()
    task_id = int(re.search(r'data-task-id="(\d+)"', page).group(1))
    key = lease_key(page)
    client.post(
        reverse("annotations:submit", args=[project.pk, task_id]),
        {"kind": "pairwise", "choice": "a", "idempotency_key": key},
        **HTMX,
    )
    assert Judgment.objects.count() == 1
    undone = client.post(url)
    assert (undone.status_code, undone.url) == (302, work_url(project))
    assert not Judgment.objects.exists()
    assert f'data-task-id="{task_id}"' in client.get(work_url(project)).content.decode()
    assert client.get(url).status_code == 405
