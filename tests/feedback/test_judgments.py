"""submit_judgment: full validation, nothing written on bad input, idempotent retries; and
undo_last_judgment."""

import pytest

from feedback.errors import ServiceError
from feedback.models import Judgment, PreferencePair
from feedback.pairs import PairPolicy
from feedback.services import (
    JudgmentInput,
    adjudicate_task,
    next_task_for,
    skip_task,
    submit_judgment,
    undo_last_judgment,
)
from feedback.services.pairs import derive_pairs

pytestmark = pytest.mark.django_db


def lease(user, project):
    assignment = next_task_for(annotator_id=user.pk, project_id=project.pk)
    assert assignment is not None
    return assignment.task


def item_ids(task):
    return list(task.items.values_list("completion_id", flat=True))


def test_pairwise_judgment_is_stored_with_the_order_shown(project, make_member, make_task):
    make_task()
    user = make_member()
    task = lease(user, project)
    judgment = submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice="a", strength="much", idempotency_key="k1"),
    )
    assert (judgment.choice, judgment.strength) == ("a", "much")
    assert sorted(judgment.shown_order) == sorted(item_ids(task))
    task.refresh_from_db()
    assert (task.judgment_count, task.status) == (1, "complete")


def test_retry_with_the_same_key_stores_one_judgment(project, make_member, make_task):
    make_task()
    user = make_member()
    task = lease(user, project)
    data = JudgmentInput(kind="pairwise", choice="b", idempotency_key="same")
    first = submit_judgment(annotator_id=user.pk, task_id=task.pk, data=data)
    again = submit_judgment(annotator_id=user.pk, task_id=task.pk, data=data)
    assert first.pk == again.pk
    assert Judgment.objects.count() == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda ids: {"ranking": [[ids[0]], [ids[1]], [ids[2]], [999_999]]}, "not in this task"),
        (lambda ids: {"ranking": [[ids[0]], [ids[0]], [ids[1], ids[2]]]}, "more than once"),
        (lambda ids: {"ranking": [[ids[0]], [ids[1]]]}, "leaves out"),
        (lambda ids: {"ranking": []}, "non-empty"),
        (lambda ids: {"ranking": [[ids[0]], [ids[1]], [ids[2]]], "ratings": {ids[0]: 9}}, "1..7"),
        (
            lambda ids: {"ranking": [[ids[0]], [ids[1]], [ids[2]]], "flags": ["boring"]},
            "Unknown flags",
        ),
        (lambda ids: {"ranking": [["x"], [ids[1]], [ids[2]]]}, "integer ids"),
    ],
)
def test_bad_rankings_are_refused_and_nothing_is_written(
    project, make_member, make_task, build, message
):
    make_task(n=3, mode="ranking")
    user = make_member()
    task = lease(user, project)
    with pytest.raises(ServiceError, match=message):
        submit_judgment(
            annotator_id=user.pk,
            task_id=task.pk,
            data=JudgmentInput(kind="ranking", idempotency_key="k", **build(item_ids(task))),
        )
    assert Judgment.objects.count() == 0
    task.refresh_from_db()
    assert task.judgment_count == 0
    assert task.assignments.get().status == "leased"


def test_ranking_with_ties_and_ratings(project, make_member, make_task):
    make_task(n=3, mode="ranking")
    user = make_member()
    task = lease(user, project)
    a, b, c = item_ids(task)
    judgment = submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=JudgmentInput(
            kind="ranking", ranking=[[b], [a, c]], ratings={a: 3, b: 6, c: 3}, idempotency_key="r"
        ),
    )
    assert judgment.ranking == [[b], [a, c]]
    assert judgment.ratings == {str(a): 3, str(b): 6, str(c): 3}


def test_a_task_not_assigned_to_the_annotator_is_refused(project, make_member, make_task):
    task = make_task()
    stranger = make_member()
    with pytest.raises(ServiceError, match="not assigned to you"):
        submit_judgment(
            annotator_id=stranger.pk,
            task_id=task.pk,
            data=JudgmentInput(kind="pairwise", choice="a", idempotency_key="k"),
        )
    assert Judgment.objects.count() == 0


def test_wrong_kind_and_bad_choice_are_refused(project, make_member, make_task):
    make_task()
    user = make_member()
    task = lease(user, project)
    for data, message in [
        (
            JudgmentInput(kind="ranking", ranking=[[1], [2]], idempotency_key="k"),
            "asks for a pairwise",
        ),
        (JudgmentInput(kind="pairwise", choice="c", idempotency_key="k"), "Choose A, B"),
        (
            JudgmentInput(kind="pairwise", choice="tie", strength="much", idempotency_key="k"),
            "Strength only",
        ),
        (JudgmentInput(kind="pairwise", choice="a", idempotency_key=""), "idempotency key"),
        (
            JudgmentInput(kind="pairwise", choice="a", idempotency_key="k", time_spent_ms=-1),
            "negative",
        ),
    ]:
        with pytest.raises(ServiceError, match=message):
            submit_judgment(annotator_id=user.pk, task_id=task.pk, data=data)
    assert Judgment.objects.count() == 0


def test_skipped_task_cannot_then_be_judged(project, make_member, make_task):
    make_task()
    user = make_member()
    task = lease(user, project)
    skip_task(annotator_id=user.pk, task_id=task.pk, reason="unsafe", note="slur in output B")
    with pytest.raises(ServiceError, match="skipped"):
        submit_judgment(
            annotator_id=user.pk,
            task_id=task.pk,
            data=JudgmentInput(kind="pairwise", choice="a", idempotency_key="k"),
        )
    task.refresh_from_db()
    assert task.slots_taken == 0


def test_a_second_judgment_on_the_same_task_is_refused(project, make_member, make_task):
    make_task()
    user = make_member()
    task = lease(user, project)
    submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice="a", idempotency_key="k1"),
    )
    with pytest.raises(ServiceError, match="already judged"):
        submit_judgment(
            annotator_id=user.pk,
            task_id=task.pk,
            data=JudgmentInput(kind="pairwise", choice="b", idempotency_key="k2"),
        )


def test_a_key_reused_on_another_task_is_a_conflict(project, make_member, make_task):
    make_task(priority=1), make_task()
    user = make_member()
    first = lease(user, project)
    data = JudgmentInput(kind="pairwise", choice="a", idempotency_key="reused")
    submit_judgment(annotator_id=user.pk, task_id=first.pk, data=data)
    second = lease(user, project)
    with pytest.raises(ServiceError, match="used for another task") as error:
        submit_judgment(annotator_id=user.pk, task_id=second.pk, data=data)
    assert error.value.code == "conflict"
    assert Judgment.objects.count() == 1
    assert second.assignments.get().status == "leased"


def test_the_returned_judgment_works_as_a_stored_instance(project, make_member, make_task):
    """Callers attach the judgment to pairs and adjudications: it must be a saved instance."""
    make_task()
    annotator = make_member()
    task = lease(annotator, project)
    judgment = submit_judgment(
        annotator_id=annotator.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice="b", idempotency_key="stored"),
    )
    item_ids = [item.completion_id for item in task.items.order_by("position")]
    pair = PreferencePair.objects.create(
        project=project,
        prompt=task.prompt,
        chosen_id=item_ids[1],
        rejected_id=item_ids[0],
        policy="test",
    )
    pair.judgments.add(judgment)
    assert list(pair.judgments.all()) == [judgment]
    assert judgment.task.project == project


def test_undo_takes_back_the_last_judgment_and_leases_its_task_again(
    project, make_member, make_task
):
    first, second = make_task(), make_task()
    user, other = make_member(), make_member()
    task = lease(user, project)
    shown = next_task_for(annotator_id=user.pk, project_id=project.pk).shown_order
    submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice="a", idempotency_key="k1"),
    )
    task.refresh_from_db()
    assert (task.judgment_count, task.status) == (1, "complete")
    held = lease(user, project)  # the next task, which undo hands back
    assert held.pk != task.pk and {task.pk, held.pk} == {first.pk, second.pk}

    assert undo_last_judgment(annotator_id=user.pk, project_id=project.pk) == task.pk
    assert not Judgment.objects.exists()
    task.refresh_from_db()
    held.refresh_from_db()
    assert (task.judgment_count, task.status, task.slots_taken) == (0, "open", 1)
    assert (held.slots_taken, held.assignments.count()) == (0, 0)
    again = next_task_for(annotator_id=user.pk, project_id=project.pk)
    assert (again.task_id, again.status, again.shown_order) == (task.pk, "leased", shown)
    # The task is the user's again: someone else is given the other one.
    assert lease(other, project).pk == held.pk
    judgment = submit_judgment(
        annotator_id=user.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice="b", idempotency_key="k2"),
    )
    assert judgment.choice == "b" and Judgment.objects.count() == 1


def test_undo_reads_again_under_its_locks(project, make_member, make_task, monkeypatch):
    """What commits between undo's first read and its locks (a skip, an answer from another tab)
    is not undone twice: a lease skipped meanwhile keeps its record and gives its slot back
    once, and an answer given meanwhile stops the undo."""
    from feedback.models import Assignment
    from feedback.services import judgments as module
    from feedback.services.queue import skip_task

    make_task(), make_task(), make_task()
    user = make_member()
    answered = lease(user, project)
    submit_judgment(
        annotator_id=user.pk,
        task_id=answered.pk,
        data=JudgmentInput(kind="pairwise", choice="a", idempotency_key="k1"),
    )
    read = module.newest_judgment

    def meanwhile(action):
        def first_read(*args):
            monkeypatch.setattr(module, "newest_judgment", read)
            found = read(*args)
            action()
            return found

        monkeypatch.setattr(module, "newest_judgment", first_read)

    held = lease(user, project)
    meanwhile(lambda: skip_task(annotator_id=user.pk, task_id=held.pk, note="unclear"))
    assert undo_last_judgment(annotator_id=user.pk, project_id=project.pk) == answered.pk
    held.refresh_from_db()
    assert held.slots_taken == 0
    assert Assignment.objects.get(task=held).skip_note == "unclear"  # the flag stays

    submit_judgment(
        annotator_id=user.pk,
        task_id=answered.pk,
        data=JudgmentInput(kind="pairwise", choice="b", idempotency_key="k2"),
    )
    other = lease(user, project)
    meanwhile(
        lambda: submit_judgment(
            annotator_id=user.pk,
            task_id=other.pk,
            data=JudgmentInput(kind="pairwise", choice="a", idempotency_key="k3"),
        )
    )
    with pytest.raises(ServiceError, match="changed while this was on its way"):
        undo_last_judgment(annotator_id=user.pk, project_id=project.pk)
    # The refusal rolled back the stand-in answer too (here it ran inside the undo's
    # transaction); what matters is that the earlier answer was not taken back in its place.
    assert list(Judgment.objects.values_list("task_id", "choice")) == [(answered.pk, "b")]


def test_undo_is_refused_once_a_judgment_is_reviewed_or_paired(project, make_member, make_task):
    user, reviewer = make_member(), make_member(role="reviewer")
    with pytest.raises(ServiceError, match="no judgment in this project") as refused:
        undo_last_judgment(annotator_id=user.pk, project_id=project.pk)
    assert refused.value.code == "not_found"
    for key in ("k1", "k2"):
        make_task()
        task = lease(user, project)
        judgment = submit_judgment(
            annotator_id=user.pk,
            task_id=task.pk,
            data=JudgmentInput(kind="pairwise", choice="a", idempotency_key=key),
        )
        if key == "k1":
            derive_pairs(project_id=project.pk, policy=PairPolicy(name="p"))
            with pytest.raises(ServiceError, match="pairs have been derived"):
                undo_last_judgment(annotator_id=user.pk, project_id=project.pk)
        else:
            adjudicate_task(
                reviewer_id=reviewer.pk, task_id=task.pk, action="accept", judgment_id=judgment.pk
            )
            with pytest.raises(ServiceError, match="A reviewer has decided"):
                undo_last_judgment(annotator_id=user.pk, project_id=project.pk)
    assert Judgment.objects.count() == 2
