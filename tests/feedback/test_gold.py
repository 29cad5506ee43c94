"""Gold checks: a decided task made gold is served to annotators who have not seen it, a share
of their leases, while they have other work; only their answers score gold accuracy."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.db.models import Exists
from django.utils import timezone

from feedback import insights, selectors
from feedback.errors import ServiceError
from feedback.models import AnnotationTask, Assignment, Membership, PreferencePair, Role
from feedback.pairs import PairPolicy
from feedback.services import (
    JudgmentInput,
    adjudicate_task,
    mark_gold,
    next_task_for,
    release_expired_leases,
    skip_task,
    submit_judgment,
    undo_last_judgment,
)
from feedback.services.pairs import derive_pairs
from feedback.services.projects import change_member_role, remove_member, update_project
from feedback.services.queue import lease_step_by_step
from tests.training.builders import make_prompt_set, make_round, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["one statement", "step by step"])
def lease(request, project):
    """A new lease for the annotator, taken as PostgreSQL takes it, or as other databases do."""

    def take(annotator):
        if request.param == "one statement":
            return next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        member = Exists(Membership.objects.filter(user_id=annotator.pk, project_id=project.pk))
        return lease_step_by_step(annotator.pk, project.pk, member, timezone.now())

    return take


def answer(task, annotator, choice: str):
    return submit_judgment(
        annotator_id=annotator.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice=choice, idempotency_key=f"k{annotator.pk}"),
    )


def answer_check(project, gold, annotator, choice: str):
    """Lease the annotator their next task, which must be the gold check, and answer it."""
    assert next_task_for(annotator_id=annotator.pk, project_id=project.pk).task_id == gold.pk
    return answer(gold, annotator, choice)


@pytest.fixture
def gold(project, make_member, make_task):
    """A pairwise task judged "a" by its one annotator, decided "a" and made gold."""
    task = make_task()
    first = make_member(username="first")
    assert next_task_for(annotator_id=first.pk, project_id=project.pk).task_id == task.pk
    answer(task, first, "a")
    reviewer = make_member(role=Role.REVIEWER)
    adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="override", choice="a")
    mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=True)
    task.refresh_from_db()
    assert (task.status, task.judgments_wanted) == ("complete", 1)
    return task


def test_a_gold_task_is_served_once_to_each_annotator_as_a_check(
    project, make_member, make_task, gold, gold_coin, lease
):
    work = [make_task(), make_task()]
    gold_coin.value = 0.0  # every lease that can be a check is one
    newcomer = make_member()
    check = lease(newcomer)
    assert check.task_id == gold.pk
    gold.refresh_from_db()
    # One judgment more wanted, and open until it comes.
    assert (gold.judgments_wanted, gold.slots_taken, gold.status) == (2, 2, "open")
    answer(gold, newcomer, "b")
    gold.refresh_from_db()
    assert (gold.judgment_count, gold.status) == (2, "complete")
    # Not twice, and never to its first annotator: they get the queue's work.
    assert lease(newcomer).task_id == work[0].pk
    first = Membership.objects.get(user__username="first").user
    assert lease(first).task_id in {t.pk for t in work}


def test_gold_checks_follow_the_draw_and_the_projects_share(
    project, make_member, make_task, gold, gold_coin, lease
):
    work = make_task(judgments_wanted=3)
    gold_coin.value = 9.9  # below the default 10%
    assert lease(make_member()).task_id == gold.pk
    gold_coin.value = 10.0
    assert lease(make_member()).task_id == work.pk
    update_project(project_id=project.pk, gold_percent=0)
    gold_coin.value = 0.0
    assert lease(make_member()).task_id == work.pk


def test_no_gold_check_without_other_work(project, make_member, gold, gold_coin, lease):
    gold_coin.value = 0.0
    assert lease(make_member()) is None  # checks are mixed into work, never all that is left


def test_an_archived_gold_task_is_not_served(
    project, make_member, make_task, gold, gold_coin, lease
):
    work = make_task()
    gold.status = "archived"
    gold.save(update_fields=["status"])
    gold_coin.value = 0.0
    assert lease(make_member()).task_id == work.pk


def test_only_checks_score_gold_accuracy(project, make_member, make_task, gold, gold_coin):
    make_task()
    gold_coin.value = 0.0
    right, wrong = make_member(username="right"), make_member(username="wrong")
    for annotator, choice in ((right, "a"), (wrong, "b")):
        answer_check(project, gold, annotator, choice)
    rows = {row.annotator: row for row in insights.agreement_report(project.pk).annotators}
    # The first annotator's answer is what the gold answer was decided from: it scores nothing.
    assert (rows["first"].gold_accuracy, rows["first"].gold_judged) == (None, 0)
    assert (rows["right"].gold_accuracy, rows["right"].gold_judged) == (1.0, 1)
    assert (rows["wrong"].gold_accuracy, rows["wrong"].gold_judged) == (0.0, 1)

    # A decision that accepts a check's answer makes it the answer, which no longer scores it.
    reviewer = make_member(role=Role.REVIEWER)
    accepted = gold.judgments.get(annotator=wrong)
    adjudicate_task(
        reviewer_id=reviewer.pk, task_id=gold.pk, action="accept", judgment_id=accepted.pk
    )
    rows = {row.annotator: row for row in insights.agreement_report(project.pk).annotators}
    assert (rows["right"].gold_accuracy, rows["wrong"].gold_judged) == (0.0, 0)


def test_a_check_can_be_taken_back_but_not_an_answer_a_decision_read(
    project, make_member, make_task, gold, gold_coin
):
    make_task()
    gold_coin.value = 0.0
    newcomer = make_member()
    answer_check(project, gold, newcomer, "b")
    assert undo_last_judgment(annotator_id=newcomer.pk, project_id=project.pk) == gold.pk
    gold.refresh_from_db()
    assert (gold.judgment_count, gold.slots_taken, gold.status) == (1, 2, "open")
    first = Membership.objects.get(user__username="first").user
    with pytest.raises(ServiceError, match="A reviewer has decided this task"):
        undo_last_judgment(annotator_id=first.pk, project_id=project.pk)


def test_checks_stay_checks_when_the_task_is_unmarked_and_marked_again(
    project, make_member, make_task, gold, gold_coin
):
    make_task(judgments_wanted=5)
    gold_coin.value = 0.0
    answered, holding = make_member(username="answered"), make_member()
    for checker in (answered, holding):
        assert next_task_for(annotator_id=checker.pk, project_id=project.pk).task_id == gold.pk
    answer(gold, answered, "b")
    reviewer = make_member(role=Role.REVIEWER)
    mark_gold(reviewer_id=reviewer.pk, task_id=gold.pk, is_gold=False)
    assert counters(gold)[1:] == (3, 2, "open")
    # The check still out, given back: the task wants what it had, not one more as ordinary work.
    skip_task(annotator_id=holding.pk, task_id=gold.pk)
    assert counters(gold) == (2, 2, 2, "complete")
    assert derive_pairs(project_id=project.pk, policy=PairPolicy(name="p")).judgments == 1
    mark_gold(reviewer_id=reviewer.pk, task_id=gold.pk, is_gold=True)
    assert counters(gold) == (2, 2, 2, "complete")
    rows = {row.annotator: row for row in insights.agreement_report(project.pk).annotators}
    assert (rows["answered"].gold_accuracy, rows["answered"].gold_judged) == (0.0, 1)
    assert derive_pairs(project_id=project.pk, policy=PairPolicy(name="p")).judgments == 1


def test_a_check_a_decision_accepts_is_preference_data(
    project, make_member, make_task, gold, gold_coin
):
    make_task()
    gold_coin.value = 0.0
    checker = make_member()
    accepted = answer_check(project, gold, checker, "b")
    reviewer = make_member(role=Role.REVIEWER)
    adjudicate_task(
        reviewer_id=reviewer.pk, task_id=gold.pk, action="accept", judgment_id=accepted.pk
    )
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="p"))
    pair = PreferencePair.objects.get(policy="p")
    assert list(pair.judgments.values_list("pk", flat=True)) == [accepted.pk]


def test_a_rounds_task_cannot_be_gold(project, make_member, make_task):
    version = make_version(project)
    prompt_set, _ = make_prompt_set(project)
    round_ = make_round(project, version, prompt_set)
    task = make_task(alignment_round_id=round_.pk)
    reviewer = make_member(role=Role.REVIEWER)
    adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="override", choice="a")
    with pytest.raises(ServiceError, match="A round's task cannot be gold"):
        mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=True)


@pytest.mark.parametrize("percent", [-1, 51])
def test_the_gold_share_is_0_to_50_percent(project, percent):
    with pytest.raises(ServiceError, match="Gold checks are 0 to 50%"):
        update_project(project_id=project.pk, gold_percent=percent)
    project.refresh_from_db()
    assert project.gold_percent == 10


def counters(task) -> tuple[int, int, int, str]:
    task.refresh_from_db()
    return task.judgments_wanted, task.slots_taken, task.judgment_count, task.status


@pytest.mark.parametrize("given_back", ["skipped", "expired", "member removed"])
def test_a_check_given_back_leaves_the_gold_task_as_it_was(
    project, make_member, make_task, gold, gold_coin, given_back
):
    make_task(judgments_wanted=5)
    gold_coin.value = 0.0
    newcomer = make_member()
    assert next_task_for(annotator_id=newcomer.pk, project_id=project.pk).task_id == gold.pk
    assert counters(gold) == (2, 2, 1, "open")
    if given_back == "skipped":
        skip_task(annotator_id=newcomer.pk, task_id=gold.pk)
    elif given_back == "expired":
        Assignment.objects.filter(task=gold, annotator=newcomer).update(
            leased_at=timezone.now() - timedelta(hours=2),
            expires_at=timezone.now() - timedelta(hours=1),
        )
        assert release_expired_leases(project.pk) == 1
    else:
        remove_member(project_id=project.pk, user_id=newcomer.pk)
    assert counters(gold) == (1, 1, 1, "complete")
    # So it is no ordinary work: with no draw for a check, the queue serves the real task.
    gold_coin.value = 100.0
    assert next_task_for(annotator_id=make_member().pk, project_id=project.pk).task_id != gold.pk


def test_a_task_made_gold_before_its_quota_is_met_ends_its_quota(
    project, make_member, make_task, gold_coin
):
    task = make_task(judgments_wanted=3)
    annotator = make_member()
    next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    answer(task, annotator, "a")
    reviewer = make_member(role=Role.REVIEWER)
    adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="override", choice="a")
    mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=True)
    assert counters(task) == (1, 1, 1, "complete")
    assert next_task_for(annotator_id=make_member().pk, project_id=project.pk) is None


def test_no_check_in_a_mode_the_project_turned_off(
    project, make_member, make_task, gold, gold_coin, lease
):
    work = make_task(mode="ranking", n=3)
    update_project(project_id=project.pk, modes=("ranking",))
    gold_coin.value = 0.0
    assert lease(make_member()).task_id == work.pk


def test_reviewers_and_admins_get_no_checks(
    project, make_member, make_task, gold, gold_coin, lease
):
    work = make_task(judgments_wanted=2)
    gold_coin.value = 0.0
    # They read gold answers on the Review tab.
    assert lease(make_member(role=Role.REVIEWER)).task_id == work.pk
    assert lease(make_member(role=Role.ADMIN)).task_id == work.pk


def test_a_rounds_task_is_never_gold_in_the_database(project, make_task):
    version = make_version(project)
    prompt_set, _ = make_prompt_set(project)
    round_ = make_round(project, version, prompt_set)
    task = make_task(alignment_round_id=round_.pk)
    with pytest.raises(IntegrityError, match="gold_task_not_in_round"):
        AnnotationTask.objects.filter(pk=task.pk).update(is_gold=True, gold_answer={"choice": "a"})


def test_checks_are_not_preference_data(project, make_member, make_task, gold, gold_coin):
    make_task()
    gold_coin.value = 0.0
    checkers = [make_member() for _ in range(3)]
    for checker in checkers:
        answer_check(project, gold, checker, "a")
    result = derive_pairs(project_id=project.pk, policy=PairPolicy(name="majority"))
    # The one pair comes from the judgment the answer was decided from, as it would without
    # the checks (an override carries the reviewer's answer on each judgment it counts).
    pair = PreferencePair.objects.get(policy="majority")
    assert result.judgments == 1
    first = gold.judgments.get(annotator__username="first")
    assert list(pair.judgments.values_list("pk", flat=True)) == [first.pk]


def test_a_task_decided_without_judgments_is_gold_only_as_a_check(
    project, make_member, make_task, gold_coin
):
    # A flagged task, say, that a reviewer answered themselves.
    task = make_task()
    reviewer = make_member(role=Role.REVIEWER)
    adjudicate_task(reviewer_id=reviewer.pk, task_id=task.pk, action="override", choice="b")
    mark_gold(reviewer_id=reviewer.pk, task_id=task.pk, is_gold=True)
    assert counters(task) == (1, 0, 0, "complete")
    work = make_task()
    annotator = make_member()
    assert next_task_for(annotator_id=annotator.pk, project_id=project.pk).task_id == work.pk
    skip_task(annotator_id=annotator.pk, task_id=work.pk)
    gold_coin.value = 0.0
    checker = make_member()
    assert next_task_for(annotator_id=checker.pk, project_id=project.pk).task_id == task.pk
    assert counters(task) == (1, 1, 0, "open")
    skip_task(annotator_id=checker.pk, task_id=task.pk)
    assert counters(task) == (1, 0, 0, "complete")


def test_a_check_goes_back_when_its_annotator_becomes_a_reviewer(
    project, make_member, make_task, gold, gold_coin
):
    work = make_task()
    gold_coin.value = 0.0
    promoted = make_member()
    assert next_task_for(annotator_id=promoted.pk, project_id=project.pk).task_id == gold.pk
    change_member_role(project_id=project.pk, user_id=promoted.pk, role=Role.REVIEWER)
    assert counters(gold) == (1, 1, 1, "complete")
    assert next_task_for(annotator_id=promoted.pk, project_id=project.pk).task_id == work.pk


def test_a_check_is_no_open_work_in_any_count(project, make_member, make_task, gold, gold_coin):
    make_task(judgments_wanted=5)
    gold_coin.value = 0.0
    checker = make_member()
    before = (selectors.project_contents(project.pk).open_tasks, open_for(checker))
    assert next_task_for(annotator_id=checker.pk, project_id=project.pk).task_id == gold.pk
    # A quiet project's counts would tell an annotator they hold a check.
    assert (selectors.project_contents(project.pk).open_tasks, open_for(checker)) == before


def open_for(user) -> int:
    return next(s.open_tasks for s in selectors.queue_summaries_for(user))


def test_staff_get_no_checks(project, make_member, make_task, gold, gold_coin, lease):
    work = make_task()
    gold_coin.value = 0.0
    assert lease(make_member(is_staff=True)).task_id == work.pk  # staff read every Review tab


def test_a_check_answered_cannot_be_taken_back_once_its_annotator_reads_the_answers(
    project, make_member, make_task, gold, gold_coin
):
    make_task()
    gold_coin.value = 0.0
    checker = make_member()
    answer_check(project, gold, checker, "b")
    change_member_role(project_id=project.pk, user_id=checker.pk, role=Role.REVIEWER)
    with pytest.raises(ServiceError, match="was a gold check"):
        undo_last_judgment(annotator_id=checker.pk, project_id=project.pk)


def test_the_agreement_reports_state_does_not_depend_on_row_order(project, gold):
    # A set's repr follows the order its items went in where their hashes collide, as 8, 16
    # and 24 do: rows read in another order must not make another state (and miss the cache).
    answer = insights.gold_answers(project.pk)[gold.pk]
    states = {
        insights.agreement_state(project.pk, {gold.pk: replace(answer, checks=frozenset(order))})
        for order in ([8, 16, 24], [24, 16, 8])
    }
    assert len(states) == 1
