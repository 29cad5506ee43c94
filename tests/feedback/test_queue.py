"""next_task_for: overlap, preference for nearly complete tasks, leases that expire."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import Assignment
from feedback.services import JudgmentInput, next_task_for, skip_task, submit_judgment

pytestmark = pytest.mark.django_db


def test_non_members_get_no_work(project, make_user, make_task):
    make_task()
    with pytest.raises(ServiceError, match="not a member"):
        next_task_for(annotator_id=make_user().pk, project_id=project.pk)


def test_overlap_gives_each_task_to_distinct_annotators(project, make_member, make_task):
    task = make_task(judgments_wanted=2)
    first, second, third = make_member(), make_member(), make_member()
    assert next_task_for(annotator_id=first.pk, project_id=project.pk).task == task
    assert next_task_for(annotator_id=second.pk, project_id=project.pk).task == task
    assert next_task_for(annotator_id=third.pk, project_id=project.pk) is None


def test_the_same_lease_is_returned_until_it_is_used(project, make_member, make_task):
    make_task(), make_task()
    user = make_member()
    first = next_task_for(annotator_id=user.pk, project_id=project.pk)
    assert next_task_for(annotator_id=user.pk, project_id=project.pk).pk == first.pk


def test_a_lease_carries_what_it_shows(project, make_member, make_task):
    task = make_task(n=3, mode="ranking")
    user = make_member()
    for _ in range(2):  # a new lease, then the same live one
        lease = next_task_for(annotator_id=user.pk, project_id=project.pk)
        items = {item.completion_id: item for item in task.items.select_related("completion")}
        shown = lease.shown
        assert (shown.project_id, shown.mode) == (project.pk, "ranking")
        assert (shown.prompt_text, shown.prompt_messages) == (task.prompt.text, None)
        assert sorted(shown.outputs) == sorted(items) == sorted(lease.shown_order)
        for completion_id, output in shown.outputs.items():
            assert output.completion_id == completion_id
            assert output.position == items[completion_id].position
            assert output.text == items[completion_id].completion.text


def test_tasks_closest_to_completion_come_first(project, make_member, make_task):
    older = make_task(judgments_wanted=2)
    newer = make_task(judgments_wanted=2)
    starter = make_member()
    # Put one slot of the newer task in use: it is now closer to completion.
    Assignment.objects.create(
        task=newer,
        annotator=starter,
        leased_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    newer.slots_taken = 1
    newer.save(update_fields=["slots_taken"])
    assert next_task_for(annotator_id=make_member().pk, project_id=project.pk).task == newer
    assert older.pk < newer.pk


def test_an_abandoned_lease_returns_to_the_queue(project, make_member, make_task):
    task = make_task()
    quitter, other = make_member(), make_member()
    lease = next_task_for(annotator_id=quitter.pk, project_id=project.pk)
    assert next_task_for(annotator_id=other.pk, project_id=project.pk) is None
    Assignment.objects.filter(pk=lease.pk).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    assert next_task_for(annotator_id=other.pk, project_id=project.pk).task == task
    assert not Assignment.objects.filter(pk=lease.pk).exists()
    task.refresh_from_db()
    assert task.slots_taken == 1


def test_skipped_work_goes_to_someone_else(project, make_member, make_task):
    task = make_task()
    skipper, other = make_member(), make_member()
    next_task_for(annotator_id=skipper.pk, project_id=project.pk)
    skip_task(annotator_id=skipper.pk, task_id=task.pk)
    assert next_task_for(annotator_id=skipper.pk, project_id=project.pk) is None
    lease = next_task_for(annotator_id=other.pk, project_id=project.pk)
    assert lease.task == task
    submit_judgment(
        annotator_id=other.pk,
        task_id=task.pk,
        data=JudgmentInput(kind="pairwise", choice="tie", idempotency_key="x"),
    )
    task.refresh_from_db()
    assert (task.status, task.judgment_count, task.slots_taken) == ("complete", 1, 1)


def test_skip_needs_a_known_reason(project, make_member, make_task):
    task = make_task()
    user = make_member()
    next_task_for(annotator_id=user.pk, project_id=project.pk)
    with pytest.raises(ServiceError, match="Skip reason"):
        skip_task(annotator_id=user.pk, task_id=task.pk, reason="lazy")


def test_abandoned_leases_are_swept_while_other_work_remains(project, make_member, make_task):
    from feedback.services import queue

    fuller = make_task(judgments_wanted=2)
    make_task(judgments_wanted=2)
    quitter, other = make_member(), make_member()
    lease = next_task_for(annotator_id=quitter.pk, project_id=project.pk)
    assert lease.task == fuller
    Assignment.objects.filter(pk=lease.pk).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    queue._last_sweep.pop(project.pk, None)  # as if the last sweep was long ago
    assert next_task_for(annotator_id=other.pk, project_id=project.pk).task == fuller
    assert not Assignment.objects.filter(pk=lease.pk).exists()


def test_one_annotators_requests_at_once_all_get_a_lease(transactional_db, make_member, make_task):
    """Two tabs, or a parallel API client: each request's statement may pick the same task
    before the other's lease commits, and the second insert broke the one-lease-a-task rule
    (a 500). Now it reads again and gets that lease (or, racing on, another task)."""
    import threading

    from django.db import connection

    tasks = [make_task(judgments_wanted=3) for _ in range(130)]  # room for others
    annotator = make_member()
    project_id = tasks[0].project_id

    def lease(start, leased, errors) -> None:
        try:
            start.wait()
            leased.append(next_task_for(annotator_id=annotator.pk, project_id=project_id))
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)
        finally:
            connection.close()

    for _ in range(30):
        start, leased, errors = threading.Barrier(4), [], []
        threads = [threading.Thread(target=lease, args=(start, leased, errors)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and len(leased) == 4 and None not in leased
        for task_id in {assignment.task_id for assignment in leased}:
            skip_task(annotator_id=annotator.pk, task_id=task_id)


def test_deleting_an_account_gives_its_leases_back(project, make_member, make_task):
    task = make_task()
    leaver, stayer = make_member(), make_member()
    assert next_task_for(annotator_id=leaver.pk, project_id=project.pk).task == task
    leaver.delete()  # as Django admin deletes an account
    task.refresh_from_db()
    assert task.slots_taken == 0
    assert next_task_for(annotator_id=stayer.pk, project_id=project.pk).task == task
