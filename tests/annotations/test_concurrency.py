"""The queue under real concurrency on PostgreSQL: annotators racing for the same tasks never share
a slot, every task ends with exactly its overlap of judgments from different annotators, and a
submission racing itself is stored once. Also the round trips a submission costs there."""

import threading
from collections import Counter

import pytest
from django.db import connection

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask, Assignment, Judgment
from tests.conftest import requires_services

pytestmark = [requires_services, pytest.mark.slow]

ANNOTATORS, TASKS, OVERLAP = 20, 10, 2


def work_until_empty(user_id: int, project_id: int, start: threading.Barrier, errors: list) -> None:
    try:
        start.wait()
        while True:
            lease = services.next_task_for(annotator_id=user_id, project_id=project_id)
            if lease is None:
                return
            services.submit_judgment(
                annotator_id=user_id,
                task_id=lease.task_id,
                data=services.JudgmentInput(
                    kind="pairwise", choice="a", idempotency_key=f"{user_id}-{lease.pk}"
                ),
            )
    except Exception as error:  # noqa: BLE001 - collected and asserted on in the main thread
        errors.append(error)
    finally:
        connection.close()


def test_twenty_annotators_racing_over_ten_tasks_with_overlap_two(
    transactional_db, django_user_model
):
    assert connection.vendor == "postgresql"
    project = services.create_project(name="Race", overlap=OVERLAP)
    for index in range(TASKS):
        prompt = services.create_prompt(project_id=project.pk, text=f"Question {index}?")
        ids = [
            services.create_completion(prompt_id=prompt.pk, text=f"{index}-{i}").pk for i in (0, 1)
        ]
        services.create_task(prompt_id=prompt.pk, completion_ids=ids)
    users = []
    for index in range(ANNOTATORS):
        user = django_user_model.objects.create_user(f"racer{index}", password="pw")
        services.add_member(project_id=project.pk, user_id=user.pk)
        users.append(user)

    start, errors = threading.Barrier(ANNOTATORS), []
    threads = [
        threading.Thread(target=work_until_empty, args=(user.pk, project.pk, start, errors))
        for user in users
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    per_task = Counter(Judgment.objects.values_list("task_id", flat=True))
    assert per_task == {
        task_id: OVERLAP for task_id in AnnotationTask.objects.values_list("pk", flat=True)
    }
    pairs = list(Judgment.objects.values_list("task_id", "annotator_id"))
    assert len(set(pairs)) == len(pairs) == TASKS * OVERLAP
    assert set(AnnotationTask.objects.values_list("status", "slots_taken", "judgment_count")) == {
        ("complete", OVERLAP, OVERLAP)
    }
    assert not Assignment.objects.filter(status="leased").exists()


def one_leased_task(
    django_user_model, name: str, *, modes=("pairwise",), outputs: int = 2, overlap: int = 1
):
    """A project with one task (of the first mode) over `outputs` completions, leased to a fresh
    member: (task, user, completion ids, lease)."""
    mode = modes[0]
    project = services.create_project(name=name, modes=modes, overlap=overlap)
    prompt = services.create_prompt(project_id=project.pk, text="Question?")
    ids = [
        services.create_completion(prompt_id=prompt.pk, text=f"answer {i}").pk
        for i in range(outputs)
    ]
    task = services.create_task(prompt_id=prompt.pk, completion_ids=ids, mode=mode)
    user = django_user_model.objects.create_user(f"{name}-annotator", password="pw")
    services.add_member(project_id=project.pk, user_id=user.pk)
    lease = services.next_task_for(annotator_id=user.pk, project_id=project.pk)
    return task, user, ids, lease


def test_the_same_submission_racing_itself_stores_one_judgment(transactional_db, django_user_model):
    """A double click or a client retrying before its first request came back: every request
    gets the one stored judgment and the task counts it once."""
    task, user, _, _ = one_leased_task(django_user_model, "double", overlap=2)
    data = services.JudgmentInput(kind="pairwise", choice="b", idempotency_key="one-click")

    copies = 8
    start, returned, errors = threading.Barrier(copies), [], []

    def submit() -> None:
        try:
            start.wait()
            judgment = services.submit_judgment(annotator_id=user.pk, task_id=task.pk, data=data)
            returned.append(judgment.pk)
        except Exception as error:  # noqa: BLE001 - asserted on below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    stored = list(Judgment.objects.values_list("pk", flat=True))
    assert len(stored) == 1 and returned == stored * copies
    task.refresh_from_db()
    assert (task.judgment_count, task.slots_taken, task.status) == (1, 1, "open")


def test_a_pairwise_submission_is_one_statement(
    transactional_db, django_user_model, django_assert_num_queries
):
    """The queue's hot path: no transaction around it, one round trip to the database."""
    task, user, _, lease = one_leased_task(django_user_model, "lean")
    data = services.JudgmentInput(kind="pairwise", choice="tie", idempotency_key="k")
    with django_assert_num_queries(1):
        judgment = services.submit_judgment(annotator_id=user.pk, task_id=task.pk, data=data)
    assert judgment.shown_order == lease.shown_order
    stored = Judgment.objects.get()
    assert (stored.pk, stored.choice, stored.shown_order) == (judgment.pk, "tie", lease.shown_order)
    task.refresh_from_db()
    assert (task.judgment_count, task.status) == (1, "complete")
    assert Assignment.objects.get().status == "submitted"


def test_a_ranking_with_ratings_is_checked_then_stored_in_one_statement(
    transactional_db, django_user_model, django_assert_num_queries
):
    """Reading the task's mode, ratings setting and outputs needs no lock: they never change."""
    task, user, ids, _ = one_leased_task(
        django_user_model, "ranked", modes=("ranking", "rating"), outputs=3
    )
    data = services.JudgmentInput(
        kind="ranking",
        ranking=[[ids[2]], [ids[0], ids[1]]],
        ratings={ids[0]: 3, ids[1]: 3, ids[2]: 6},
        idempotency_key="k",
    )
    with django_assert_num_queries(3):  # the task's rules, its outputs, the write
        judgment = services.submit_judgment(annotator_id=user.pk, task_id=task.pk, data=data)
    stored = Judgment.objects.get()
    assert stored.pk == judgment.pk
    assert stored.ranking == [[ids[2]], [ids[0], ids[1]]]
    assert stored.ratings == {str(ids[0]): 3, str(ids[1]): 3, str(ids[2]): 6}
    bad = services.JudgmentInput(kind="ranking", ranking=[[ids[0]]], idempotency_key="k2")
    with pytest.raises(ServiceError, match="already judged this task"):
        services.submit_judgment(annotator_id=user.pk, task_id=task.pk, data=bad)
