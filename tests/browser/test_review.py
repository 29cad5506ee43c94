"""A reviewer sees every judgment of a task side by side, then accepts one or overrides."""

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Adjudication, Role
from tests.annotations import scenarios
from tests.browser.conftest import sign_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def judge(project, task, user, **answer):
    services.next_task_for(annotator_id=user.pk, project_id=project.pk)
    services.submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=services.JudgmentInput(
            kind=task.mode, idempotency_key=f"k{user.pk}-{task.pk}", **answer
        ),
    )


def test_a_reviewer_accepts_and_overrides(page, transactional_db, django_user_model):
    project = scenarios.make_project(overlap=2)
    users = [
        django_user_model.objects.create_user(name, password="pw")
        for name in ("alice", "bob", "rita")
    ]
    for user, role in zip(users, (Role.ANNOTATOR, Role.ANNOTATOR, Role.REVIEWER), strict=True):
        services.add_member(project_id=project.pk, user_id=user.pk, role=role)
    alice, bob, reviewer = users
    pair = scenarios.make_task(
        project,
        [scenarios.CODE_ANSWER, scenarios.SHORT_ANSWER],
        text="How do I reverse a list in Python?",
        priority=2,
    )
    ranking = scenarios.make_task(
        project, scenarios.LISBON_ANSWERS, messages=scenarios.CHAT, mode="ranking", priority=1
    )
    judge(project, pair, alice, choice="a", strength="much", rationale="Shows code.")
    judge(project, pair, bob, choice="b")
    a, b, c = ranking.items.order_by("position").values_list("completion_id", flat=True)
    judge(project, ranking, alice, ranking=[[a], [b], [c]])
    judge(project, ranking, bob, ranking=[[a], [b, c]])

    sign_in(page, "rita")
    page.get_by_role("link", name="Review").click()
    expect(page.locator(".badge.warn")).to_have_count(2)
    snap(page, "review-list", tablet=True)

    page.get_by_role("link", name=f"#{pair.pk}").click()
    expect(page.get_by_text("Annotators disagree")).to_be_visible()
    snap(page, "review-task", tablet=True)
    page.get_by_role("row", name="alice").get_by_role("button", name="Accept").click()
    expect(page.locator("#adjudication")).to_contain_text(
        "Accepted alice's judgment: A much better"
    )
    adjudication = Adjudication.objects.get(task=pair)
    assert (adjudication.reviewer, adjudication.accepted_judgment.annotator) == (reviewer, alice)

    page.goto(f"/projects/{project.pk}/review/{ranking.pk}/")
    for number in (3, 1, 2):  # C, A, B: the review page shows outputs in task order
        page.locator(f'.chip[data-number="{number}"]').click()
    page.get_by_label("Note").fill("C is the most useful.")
    page.get_by_role("button", name="Override").click()
    expect(page.locator("#adjudication")).to_contain_text("Overridden: C > A > B")
    adjudication = Adjudication.objects.get(task=ranking)
    assert (adjudication.action, adjudication.ranking, adjudication.reviewer) == (
        "override",
        [[c], [a], [b]],
        reviewer,
    )
    assert adjudication.note == "C is the most useful."
