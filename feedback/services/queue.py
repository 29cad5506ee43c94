"""The annotation queue: lease the next task to an annotator, skip it, and reclaim stale leases.

Lock order is always task row first, then assignment rows, so concurrent calls cannot deadlock.
On PostgreSQL, `SELECT ... FOR UPDATE SKIP LOCKED` lets annotators lease different tasks without
waiting on each other (Label Studio's next_task does the same).

Gold checks: while an annotator has other work, a share of their leases (the project's
gold_percent) go to a gold task they have not seen, whatever its quota, so that every annotator
answers known questions, unaware which they are; the task then wants that judgment more.
"""

import random
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, PositiveSmallIntegerField, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import (
    AnnotationTask,
    Assignment,
    Completion,
    Membership,
    Project,
    Prompt,
    TaskItem,
)
from feedback.models.projects import JudgmentMode, Role
from feedback.models.tasks import AssignmentStatus, SkipReason, TaskStatus
from feedback.raw_rows import first_instance, json_column
from feedback.selectors import TaskOutput, TaskShown, task_shown

STALE_LEASES_PER_CALL = 50
# A task's judgments_wanted is a small integer: gold checks stop short of its limit.
MOST_WANTED = 32767


def slot_given_back(*, check: bool) -> dict:
    """The task update for a slot given back (a skip, an expired or released lease). A check's
    slot was wanted beyond the task's quota, and a gold task's quota has ended: either way the
    task wants one fewer again (at least one), and is complete again once no lease is out."""
    fewer = Greatest(F("slots_taken") - 1, Value(1), output_field=PositiveSmallIntegerField())
    none_out = Q(status=TaskStatus.OPEN, judgment_count__gte=F("slots_taken") - 1)
    if check:
        wanted, done = fewer, none_out
    else:
        wanted = Case(When(is_gold=True, then=fewer), default=F("judgments_wanted"))
        done = Q(is_gold=True) & none_out
    return {
        "slots_taken": F("slots_taken") - 1,
        "judgments_wanted": wanted,
        "status": Case(When(done, then=Value(TaskStatus.COMPLETE)), default=F("status")),
    }


def takes_checks(user_id: int, project_id: int) -> bool:
    """Whether the member is served gold checks: annotators only, as reviewers, admins and staff
    read the gold answers on the Review tab (LEASE_SQL's gold branch says the same)."""
    return Membership.objects.filter(
        project_id=project_id, user_id=user_id, role=Role.ANNOTATOR, user__is_staff=False
    ).exists()


def gold_coin() -> float:
    """A number in [0, 100): a lease is a gold check when it falls below the project's
    gold_percent (and there is a gold task the annotator has not seen, and other work)."""
    return random.uniform(0, 100)


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.ANNOTATION_LEASE_SECONDS)


def require_member(user_id: int, project_id: int) -> Membership:
    membership = Membership.objects.filter(user_id=user_id, project_id=project_id).first()
    if membership is None:
        raise ServiceError("You are not a member of this project.", code="forbidden")
    return membership


@transaction.atomic
def release_leases(
    *, annotator_id: int, project_id: int | None = None, checks_only: bool = False
) -> int:
    """Give the tasks leased to the annotator (in one project, or in all; only gold checks, or
    every one) back to the queue; how many."""
    leases = Assignment.objects.filter(annotator_id=annotator_id, status=AssignmentStatus.LEASED)
    if project_id is not None:
        leases = leases.filter(task__project_id=project_id)
    if checks_only:
        leases = leases.filter(is_check=True)
    held = sorted(leases.values_list("task_id", flat=True))
    # Task rows first, in id order, as the queue locks them.
    list(AnnotationTask.objects.select_for_update().filter(pk__in=held).order_by("pk"))
    # Read again under the locks: a lease answered meanwhile is a judgment now, its slot used.
    released = list(leases.filter(task_id__in=held).values_list("task_id", "is_check"))
    leases.filter(task_id__in=[task_id for task_id, _ in released]).delete()
    for check in (False, True):
        given_back = [task_id for task_id, is_check in released if is_check == check]
        AnnotationTask.objects.filter(pk__in=given_back).update(**slot_given_back(check=check))
    return len(released)


def release_all_expired_leases() -> int:
    """release_expired_leases in every project that has expired leases; how many were freed."""
    stale = (
        Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=timezone.now())
        .values_list("task__project_id", flat=True)
        .distinct()
        .order_by()
    )
    return sum(release_expired_leases(project_id) for project_id in list(stale))


def release_expired_leases(project_id: int, now: datetime | None = None) -> int:
    """Delete leases past their expiry and free their slots; returns how many were freed."""
    now = now or timezone.now()
    stale = list(
        Assignment.objects.filter(
            task__project_id=project_id, status=AssignmentStatus.LEASED, expires_at__lte=now
        ).values_list("pk", "task_id", "is_check")[:STALE_LEASES_PER_CALL]
    )
    freed = 0
    for assignment_id, task_id, check in stale:
        with transaction.atomic():
            locked = (
                AnnotationTask.objects.select_for_update(skip_locked=True)
                .filter(pk=task_id)
                .first()
            )
            if locked is None:
                continue
            deleted, _ = Assignment.objects.filter(
                pk=assignment_id, status=AssignmentStatus.LEASED, expires_at__lte=now
            ).delete()
            if deleted:
                AnnotationTask.objects.filter(pk=task_id).update(**slot_given_back(check=check))
                freed += 1
    return freed


def next_task_for(*, annotator_id: int, project_id: int) -> Assignment | None:
    """The annotator's live lease in this project, or a new lease on the best open task, with
    what it shows as `shown` (a TaskShown: mode, prompt, outputs).

    Best = highest priority, then closest to completion, then oldest; now and then a gold check
    instead (see above). None when nothing is left.
    Membership is checked inside the lookups; the explicit check runs only when they come back
    empty, to tell "not a member" from "nothing left".
    """
    now = timezone.now()
    if sweep_is_due(project_id, now):
        release_expired_leases(project_id, now)
    assignment = live_or_new_lease(annotator_id, project_id, now)
    if assignment is None:
        require_member(annotator_id, project_id)
        # Nothing open: abandoned leases may be all that is left, so reclaim them now.
        if release_expired_leases(project_id, now):
            assignment = live_or_new_lease(annotator_id, project_id, now)
    return assignment


def shown_from_json(value: object) -> TaskShown:
    """The lease statement's `shown` column: JSON [project id, mode, prompt text, prompt
    messages, [[completion id, position, text, finish reason], ...]]."""
    project_id, mode, text, messages, outputs = json_column(value)
    return TaskShown(project_id, mode, text, messages, {o[0]: TaskOutput(*o) for o in outputs})


# Reclaiming stale leases is a query per call; at thousands of calls a second once every few
# seconds per process is plenty (release_expired_leases_task also runs it, on Celery's beat).
SWEEP_INTERVAL = timedelta(seconds=5)
_last_sweep: dict[int, datetime] = {}


def sweep_is_due(project_id: int, now: datetime) -> bool:
    last = _last_sweep.get(project_id)
    if last is not None and now - last < SWEEP_INTERVAL:
        return False
    _last_sweep[project_id] = now
    return True


def live_or_new_lease(annotator_id: int, project_id: int, now: datetime) -> Assignment | None:
    if connection.vendor == "postgresql":
        return lease_in_one_statement(annotator_id, project_id, now)
    is_member = Exists(Membership.objects.filter(user_id=annotator_id, project_id=project_id))
    live = (
        Assignment.objects.filter(
            is_member,
            annotator_id=annotator_id,
            task__project_id=project_id,
            status=AssignmentStatus.LEASED,
            expires_at__gt=now,
        )
        .order_by("leased_at")
        .first()
    )
    assignment = live or lease_step_by_step(annotator_id, project_id, is_member, now)
    if assignment is not None:
        assignment.shown = task_shown(assignment.task_id)
    return assignment


# PostgreSQL: find the live lease, or pick, lock, count the slot and create a lease, in one
# statement: one round trip on the queue's hot path instead of six. The rules are those of the
# step-by-step version below, which other databases use and the same tests cover.
# Its plan must not depend on the annotator's history, and must be reusable:
# - The statuses are literals, not parameters. As parameters, the generic plan could not use
#   the column's statistics (few assignments are live leases), costed itself ten times a fresh
#   plan, and PostgreSQL planned the statement on every call: 0.56 ms, twice its execution.
# - OFFSET 0 keeps "not seen by this annotator" a probe of the (task, annotator) index for each
#   candidate task. As an anti join, the planner read all of the annotator's assignments on
#   every lease: 1.3 ms at 864 of them, growing with every judgment.
LEASE_SQL = """
WITH member AS (
    SELECT m.role FROM {membership} m
    WHERE m.project_id = %(project)s AND m.user_id = %(annotator)s
), live AS (
    SELECT a.* FROM {assignment} a JOIN {task} t ON t.id = a.task_id
    WHERE a.annotator_id = %(annotator)s AND a.status = '{leased}' AND a.expires_at > %(now)s
      AND t.project_id = %(project)s AND EXISTS (SELECT 1 FROM member)
    ORDER BY a.leased_at
    LIMIT 1
), queued AS (
    SELECT t.id FROM {task} t
    WHERE NOT EXISTS (SELECT 1 FROM live) AND EXISTS (SELECT 1 FROM member)
      AND t.project_id = %(project)s AND t.status = '{open}'
      AND t.slots_taken < t.judgments_wanted
      AND NOT EXISTS (SELECT 1 FROM {assignment} a
                      WHERE a.task_id = t.id AND a.annotator_id = %(annotator)s OFFSET 0)
    ORDER BY t.priority DESC, t.slots_taken DESC, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), gold AS (
    -- Checks are for annotators (reviewers, admins and staff read the gold answers on the
    -- Review tab). The draw, the role and staff are filters evaluated once: a "no" costs nothing.
    SELECT t.id FROM {task} t JOIN {project} p ON p.id = t.project_id
    WHERE EXISTS (SELECT 1 FROM queued) AND (SELECT role FROM member) = '{annotator}'
      AND %(coin)s < (SELECT gold_percent FROM {project} WHERE id = %(project)s)
      AND NOT (SELECT is_staff FROM {user} WHERE id = %(annotator)s)
      AND p.id = %(project)s
      AND t.project_id = %(project)s AND t.is_gold AND t.status <> '{archived}'
      AND CASE t.mode WHEN '{pairwise}' THEN p.pairwise_enabled
                      WHEN '{ranking}' THEN p.ranking_enabled ELSE p.rating_enabled END
      AND t.judgments_wanted < {most_wanted}
      AND NOT EXISTS (SELECT 1 FROM {assignment} a
                      WHERE a.task_id = t.id AND a.annotator_id = %(annotator)s OFFSET 0)
    ORDER BY t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), picked AS (
    SELECT id, true AS is_check FROM gold
    UNION ALL SELECT id, false FROM queued WHERE NOT EXISTS (SELECT 1 FROM gold)
), taken AS (
    -- A gold check is a judgment more than the task wanted: it wants one more, and is open
    -- until it has it (for a queued task both are as they were).
    UPDATE {task} t SET slots_taken = t.slots_taken + 1,
        judgments_wanted = GREATEST(t.judgments_wanted, t.slots_taken + 1), status = '{open}'
    FROM picked WHERE t.id = picked.id
    RETURNING t.id
), created AS (
    INSERT INTO {assignment} (task_id, annotator_id, status, leased_at, expires_at, shown_order,
                              skip_reason, skip_note, is_check)
    SELECT taken.id, %(annotator)s, '{leased}', %(now)s, %(expires)s,
           -- left/right and list order randomised per judgment
           (SELECT jsonb_agg(i.completion_id ORDER BY random())
            FROM {item} i WHERE i.task_id = taken.id),
           '', '', picked.is_check
    FROM taken JOIN picked ON picked.id = taken.id
    RETURNING *
), leased AS (
    SELECT * FROM live UNION ALL SELECT * FROM created
)
SELECT leased.*, json_build_array(
           t.project_id, t.mode, p.text, p.messages,
           (SELECT json_agg(json_build_array(
                       i.completion_id, i.position, c.text, c.generation_settings->>'finish_reason'))
            FROM {item} i JOIN {completion} c ON c.id = i.completion_id
            WHERE i.task_id = leased.task_id)
       ) AS shown
FROM leased JOIN {task} t ON t.id = leased.task_id JOIN {prompt} p ON p.id = t.prompt_id
"""


@cache
def lease_sql() -> str:
    """LEASE_SQL with its tables and statuses filled in (the same text on every call)."""
    return LEASE_SQL.format(
        task=AnnotationTask._meta.db_table,
        membership=Membership._meta.db_table,
        assignment=Assignment._meta.db_table,
        item=TaskItem._meta.db_table,
        completion=Completion._meta.db_table,
        prompt=Prompt._meta.db_table,
        project=Project._meta.db_table,
        user=get_user_model()._meta.db_table,
        open=TaskStatus.OPEN,
        archived=TaskStatus.ARCHIVED,
        leased=AssignmentStatus.LEASED,
        annotator=Role.ANNOTATOR,
        pairwise=JudgmentMode.PAIRWISE,
        ranking=JudgmentMode.RANKING,
        most_wanted=MOST_WANTED,
    )


def lease_statement(annotator_id: int, project_id: int, now: datetime) -> tuple[str, dict]:
    """The lease statement for these arguments, and its parameters."""
    params = {
        "project": project_id,
        "annotator": annotator_id,
        "now": now,
        "expires": now + lease_duration(),
        "coin": gold_coin(),
    }
    return lease_sql(), params


def lease_in_one_statement(annotator_id: int, project_id: int, now: datetime) -> Assignment | None:
    """The lease, with what it shows selected by the same statement: a query fewer per lease on
    the hot path."""
    statement = lease_statement(annotator_id, project_id, now)
    try:
        # A savepoint only inside a transaction: alone, the statement is its own.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            assignment = first_instance(Assignment, *statement)
    except IntegrityError:
        # The same annotator's other request (a second tab, a parallel client) leased the task
        # this one picked after the statement's snapshot was taken; read again, it is their
        # live lease.
        assignment = first_instance(Assignment, *statement)
    if assignment is not None:
        assignment.shown = shown_from_json(assignment.shown)
    return assignment


@transaction.atomic
def lease_step_by_step(
    annotator_id: int, project_id: int, is_member: Exists, now: datetime
) -> Assignment | None:
    seen = Assignment.objects.filter(annotator_id=annotator_id, task__project_id=project_id).values(
        "task_id"
    )
    unseen = AnnotationTask.objects.select_for_update(skip_locked=True, of=("self",)).exclude(
        pk__in=seen
    )
    task = (
        unseen.filter(
            is_member,
            project_id=project_id,
            status=TaskStatus.OPEN,
            slots_taken__lt=F("judgments_wanted"),
        )
        .order_by("-priority", "-slots_taken", "pk")
        .first()
    )
    if task is None:
        return None
    project = Project.objects.get(pk=project_id)
    check = False
    if takes_checks(annotator_id, project_id) and gold_coin() < project.gold_percent:
        gold = (
            unseen.filter(
                project_id=project_id,
                is_gold=True,
                mode__in=project.enabled_modes,
                judgments_wanted__lt=MOST_WANTED,
            )
            .exclude(status=TaskStatus.ARCHIVED)
            .order_by("pk")
            .first()
        )
        if gold is not None:
            task, check = gold, True
    shown_order = list(task.items.values_list("completion_id", flat=True))
    random.shuffle(shown_order)  # left/right and list order randomised per judgment
    # As the statement does: a gold check wants a judgment more (see LEASE_SQL).
    task.judgments_wanted = max(task.judgments_wanted, task.slots_taken + 1)
    task.slots_taken += 1
    task.status = TaskStatus.OPEN
    task.save(update_fields=["judgments_wanted", "slots_taken", "status"])
    return Assignment.objects.create(
        task=task,
        annotator_id=annotator_id,
        leased_at=now,
        expires_at=now + lease_duration(),
        shown_order=shown_order,
        is_check=check,
    )


@transaction.atomic
def skip_task(
    *, annotator_id: int, task_id: int, reason: str = SkipReason.SKIP, note: str = ""
) -> Assignment:
    """Give a leased task back; it goes to someone else and never returns to this annotator."""
    if reason not in SkipReason.values:
        raise ServiceError(f"Skip reason must be one of {', '.join(SkipReason.values)}.")
    task = AnnotationTask.objects.select_for_update().filter(pk=task_id).first()
    if task is None:
        raise ServiceError(f"No task with id {task_id}.", code="not_found")
    assignment = (
        Assignment.objects.select_for_update()
        .filter(task=task, annotator_id=annotator_id, status=AssignmentStatus.LEASED)
        .first()
    )
    if assignment is None:
        raise ServiceError("This task is not leased to you; load the next task.", code="conflict")
    assignment.status = AssignmentStatus.SKIPPED
    assignment.skip_reason = reason
    assignment.skip_note = note[:2000]
    assignment.finished_at = timezone.now()
    assignment.save(update_fields=["status", "skip_reason", "skip_note", "finished_at"])
    AnnotationTask.objects.filter(pk=task.pk).update(**slot_given_back(check=assignment.is_check))
    return assignment
