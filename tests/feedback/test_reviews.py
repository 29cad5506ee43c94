"""adjudicate_task: reviewers accept a judgment or override; one adjudication per task; mark_gold
makes the adjudicated answer a gold answer."""

import pytest

from feedback.errors import ServiceError
from feedback.models import Adjudication, Role
from feedback.services import (
    JudgmentInput,
    adjudicate_task,
    mark_gold,
    next_task_for,
    submit_judgment,
)

pytestmark = pytest.mark.django_db


def judged(project, make_member, task, choice="a"):
    user = make_member()
    next_task_for(annotator_id=user.pk, project_id=project.pk)
    return submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=JudgmentInput(kind=task.mode, choice=choice, idempotency_key=f"k-{user.pk}"),
    )


def test_accepting_records_the_judgment_and_the_reviewer(project, make_member, make_task):
    task = make_task()
    judgment = judged(project, make_member, task)
    reviewer = make_member(role=Role.REVIEWER)
    adjudication = adjudicate_task(
        reviewer_id=reviewer.pk, task_id=task.pk, action="accept", judgment_id=judgment.pk
    )
    assert (adjudication.reviewer, adjudication.accepted_judgment, adjudication.choice) == (
        reviewer,
        judgment,
        None,
    )


def test_adjudicating_again_replaces_the_decision(project, make_member, make_task):
    task = make_task()
    judgment = judged(project, make_member, task)
    first, second = make_member(role=Role.REVIEWER), make_member(role=Role.ADMIN)
    adjudicate_task(reviewer_id=first.pk, task_id=task.pk, action="accept", judgment_id=judgment.pk)
    adjudicate_task(
        reviewer_id=second.pk, task_id=task.pk, action="override", choice="tie", note="n"
    )
    adjudication = Adjudication.objects.get(task=task)
    assert (adjudication.reviewer, adjudication.action, adjudication.accepted_judgment) == (
        second,
        "override",
        None,
    )
    assert (adjudication.choice, adjudication.note) == ("tie", "n")


def test_a_ranking_override_must_rank_the_tasks_outputs(project, make_member, make_task):
    task = make_task(n=3, mode="ranking")
    ids = list(task.items.values_list("completion_id", flat=True))
    reviewer = make_member(role=Role.REVIEWER)
    with pytest.raises(ServiceError, match="leaves out"):
        adjudicate_task(
            reviewer_id=reviewer.pk, task_id=task.pk, action="override", ranking=[[ids[0]]]
        )
    adjudication = adjudicate_task(
        reviewer_id=reviewer.pk, task_id=task.pk, action="override", ranking=[[ids[2]], ids[:2]]
    )
    assert adjudication.ranking == [[ids[2]], ids[:2]]


def test_annotators_and_strangers_cannot_adjudicate(project, make_member, make_task, make_user):
    task = make_task()
    judgment = judged(project, make_member, task)
    for user in (make_member(), make_user()):
        with pytest.raises(ServiceError) as error:
            adjudicate_task(
                reviewer_id=user.pk, task_id=task.pk, action="accept", judgment_id=judgment.pk
            )
        assert error.value.code == "forbidden"
    staff = make_user(is_staff=True)
    adjudicate_task(reviewer_id=staff.pk, task_id=task.pk, action="accept", judgment_id=judgment.pk)


def test_only_this_tasks_judgments_can_be_accepted(project, make_member, make_task):
    task, other = make_task(), make_task(priority=1)
    foreign = judged(project, make_member, other)
    reviewer = make_member(role=Role.REVIEWER)
    with pytest.raises(ServiceError, match="Pick one of this task's judgments"):
        adjudicate_task(
            reviewer_id=reviewer.pk, task_id=task.pk, action="accept", judgment_id=foreign.pk
        )
    with pytest.raises(ServiceError, match="Accept a judgment or override"):
        adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="veto")


def test_an_adjudicated_task_becomes_gold_with_the_decided_answer(project, make_member, make_task):
    # How gold tasks are served and scored: tests/feedback/test_gold.py.
    task = make_task(judgments_wanted=2)
    right = judged(project, make_member, task, choice="a")
    judged(project, make_member, task, choice="b")
    reviewer = make_member(role=Role.REVIEWER)
    with pytest.raises(ServiceError, match="Adjudicate the task first"):
        mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=True)
    with pytest.raises(ServiceError, match="Only reviewers and admins"):
        mark_gold(reviewer_id=right.annotator_id, task_id=task.pk, is_gold=True)

    adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="accept", judgment_id=right.pk)
    mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=True)
    task.refresh_from_db()
    assert (task.is_gold, task.gold_answer) == (True, {"choice": "a"})

    # The gold answer follows the adjudication when a reviewer changes their mind.
    adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="override", choice="b")
    task.refresh_from_db()
    assert task.gold_answer == {"choice": "b"}
    mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=False)
    task.refresh_from_db()
    assert (task.is_gold, task.gold_answer) == (False, None)

    ranked = make_task(n=3, mode="ranking")
    ids = list(ranked.items.values_list("completion_id", flat=True))
    adjudicate_task(
        reviewer_id=reviewer.pk, task_id=ranked.pk, action="override", ranking=[[ids[2]], ids[:2]]
    )
    assert mark_gold(reviewer_id=reviewer.pk, task_id=ranked.pk, is_gold=True).gold_answer == {
        "ranking": [[ids[2]], ids[:2]]
    }
    rated = make_task(n=2, mode="rating")
    with pytest.raises(ServiceError, match="rating tasks have neither"):
        mark_gold(reviewer_id=reviewer.pk, task_id=rated.pk, is_gold=True)
