"""Submitting judgments. One judgment per (task, annotator); a retried request with the same
idempotency key returns the stored judgment instead of writing a second one."""

from contextlib import nullcontext
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import (
    Adjudication,
    AnnotationTask,
    Assignment,
    Judgment,
    Project,
    TaskItem,
)
from feedback.models.judgments import (
    JUDGMENT_FLAGS,
    LIKERT_MAX,
    LIKERT_MIN,
    PairwiseChoice,
    Strength,
)
from feedback.models.projects import JudgmentMode
from feedback.models.tasks import AssignmentStatus, TaskStatus
from feedback.raw_rows import json_column
from feedback.services.queue import lease_duration, slot_given_back, takes_checks

MAX_RATIONALE_CHARS = 10_000


@dataclass(frozen=True)
class JudgmentInput:
    """What an annotator submits. `ranking` is groups of completion ids, best first; a group of
    several ids is a tie. `ratings` maps completion id to a Likert score."""

    kind: str
    idempotency_key: str
    choice: str | None = None
    strength: str | None = None
    ranking: list[list[int]] | None = None
    ratings: dict[int, int] | None = None
    rationale: str = ""
    time_spent_ms: int | None = None
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LockedSlot:
    """An annotator's assignment on a task, read under lock with what validation needs."""

    assignment_id: int
    status: str
    shown_order: list[int]
    mode: str
    rating_enabled: bool


def check_ranking(ranking: object, item_ids: list[int]) -> list[list[int]]:
    if not isinstance(ranking, list) or not ranking:
        raise ServiceError("A ranking is a non-empty list of groups of completion ids, best first.")
    seen: list[int] = []
    clean: list[list[int]] = []
    for group in ranking:
        if not isinstance(group, list) or not group:
            raise ServiceError("Each place in a ranking is a non-empty list of completion ids.")
        if not all(isinstance(cid, int) and not isinstance(cid, bool) for cid in group):
            raise ServiceError("A ranking names completions by their integer ids.")
        seen.extend(group)
        clean.append(list(group))
    outside = sorted(set(seen) - set(item_ids))
    if outside:
        raise ServiceError(f"The ranking names completions {outside} that are not in this task.")
    duplicates = sorted({cid for cid in seen if seen.count(cid) > 1})
    if duplicates:
        raise ServiceError(f"The ranking names completions {duplicates} more than once.")
    missing = sorted(set(item_ids) - set(seen))
    if missing:
        raise ServiceError(f"The ranking leaves out completions {missing}; rank every output.")
    return clean


def check_ratings(ratings: object, item_ids: list[int]) -> dict[str, int]:
    if not isinstance(ratings, dict) or not ratings:
        raise ServiceError("Ratings map each completion id to a score.")
    clean: dict[str, int] = {}
    for key, score in ratings.items():
        try:
            cid = int(key)
        except (TypeError, ValueError):
            raise ServiceError(f"Rating key {key!r} is not a completion id.") from None
        if cid not in item_ids:
            raise ServiceError(f"Completion {cid} is not in this task.")
        if (
            isinstance(score, bool)
            or not isinstance(score, int)
            or not LIKERT_MIN <= score <= LIKERT_MAX
        ):
            raise ServiceError(
                f"Rating for completion {cid} must be a whole number {LIKERT_MIN}..{LIKERT_MAX}."
            )
        clean[str(cid)] = score
    missing = sorted(set(item_ids) - {int(k) for k in clean})
    if missing:
        raise ServiceError(f"Rate every output; completions {missing} have no rating.")
    return clean


def check_judgment(
    data: JudgmentInput, mode: str, rating_enabled: bool, item_ids: list[int]
) -> dict:
    """Validate a submission against its task (its mode, whether its project collects ratings
    and its outputs); return the Judgment field values."""
    if data.kind != mode:
        raise ServiceError(f"This task asks for a {mode} judgment, not {data.kind!r}.")
    if not data.idempotency_key or len(data.idempotency_key) > 100:
        raise ServiceError("Send an idempotency key of 1 to 100 characters with each judgment.")
    fields: dict = {"choice": None, "strength": None, "ranking": None, "ratings": None}
    if data.kind == JudgmentMode.PAIRWISE:
        if data.choice not in PairwiseChoice.values:
            raise ServiceError("Choose A, B, tie or both bad.")
        if data.strength is not None:
            if data.strength not in Strength.values:
                raise ServiceError("Strength is 'slight' or 'much'.")
            if data.choice not in (PairwiseChoice.A, PairwiseChoice.B):
                raise ServiceError("Strength only applies when A or B wins.")
        if data.ranking is not None:
            raise ServiceError("A pairwise judgment has no ranking.")
        fields.update(choice=data.choice, strength=data.strength)
    elif data.kind == JudgmentMode.RANKING:
        fields["ranking"] = check_ranking(data.ranking, item_ids)
    elif data.kind == JudgmentMode.RATING and data.ratings is None:
        raise ServiceError("Rate every output.")
    if data.kind != JudgmentMode.PAIRWISE and (data.choice or data.strength):
        raise ServiceError("Only pairwise judgments have a choice and strength.")
    if data.ratings is not None:
        if not rating_enabled and data.kind != JudgmentMode.RATING:
            raise ServiceError("This project does not collect ratings.")
        fields["ratings"] = check_ratings(data.ratings, item_ids)
    if not isinstance(data.flags, list) or not all(isinstance(f, str) for f in data.flags):
        raise ServiceError(f"Flags are a list of names: {', '.join(JUDGMENT_FLAGS)}.")
    bad_flags = sorted(set(data.flags) - set(JUDGMENT_FLAGS))
    if bad_flags:
        raise ServiceError(f"Unknown flags {bad_flags}; use {', '.join(JUDGMENT_FLAGS)}.")
    if data.time_spent_ms is not None and data.time_spent_ms < 0:
        raise ServiceError("Time spent cannot be negative.")
    if len(data.rationale) > MAX_RATIONALE_CHARS:
        raise ServiceError(f"Keep the rationale under {MAX_RATIONALE_CHARS} characters.")
    if "\x00" in data.rationale:
        raise ServiceError("The rationale contains a NUL character, which cannot be stored.")
    fields.update(
        rationale=data.rationale,
        time_spent_ms=data.time_spent_ms,
        flags=sorted(set(data.flags)),
        idempotency_key=data.idempotency_key,
    )
    return fields


def submit_judgment(*, annotator_id: int, task_id: int, data: JudgmentInput) -> Judgment:
    """Record a judgment on a task leased to the annotator; completes the task at its quota."""
    try:
        return record_if_leased(annotator_id, task_id, data) or _submit(annotator_id, task_id, data)
    except IntegrityError:
        # The (annotator, idempotency key) pair is taken: a concurrent retry won the race (return
        # what it stored), or the client reused a key from another task.
        stored = Judgment.objects.filter(
            annotator_id=annotator_id, idempotency_key=data.idempotency_key
        ).first()
        if stored is None:
            raise
        if stored.task_id != task_id:
            raise ServiceError(
                "This idempotency key was used for another task.", code="conflict"
            ) from None
        return stored


# The locked path, for other databases and for what record_if_leased leaves (a retry, a refusal,
# a lease that changed under it). Locks the task row, then the assignment, the queue's lock order;
# every writer of an assignment holds its task's lock.
LOCK_SQL = """
SELECT a.id, a.status, a.shown_order, t.mode, p.rating_enabled
FROM {assignment} a
JOIN {task} t ON t.id = a.task_id
JOIN {project} p ON p.id = t.project_id
WHERE a.task_id = %s AND a.annotator_id = %s
"""


def lock_slot(task_id: int, annotator_id: int) -> LockedSlot | None:
    sql = LOCK_SQL.format(
        assignment=Assignment._meta.db_table,
        task=AnnotationTask._meta.db_table,
        project=Project._meta.db_table,
    )
    if connection.features.has_select_for_update_of:  # SQLite locks the database instead
        sql += "FOR UPDATE OF t, a"
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id, annotator_id])
        row = cursor.fetchone()
    if row is None:
        return None
    assignment_id, status, shown_order, mode, rating_enabled = row
    return LockedSlot(assignment_id, status, json_column(shown_order), mode, bool(rating_enabled))


@transaction.atomic
def _submit(annotator_id: int, task_id: int, data: JudgmentInput) -> Judgment:
    slot = lock_slot(task_id, annotator_id)
    if slot is None:
        if not AnnotationTask.objects.filter(pk=task_id).exists():
            raise ServiceError(f"No task with id {task_id}.", code="not_found")
        raise ServiceError(
            "This task is not assigned to you; load the next task.", code="forbidden"
        )
    if slot.status == AssignmentStatus.SUBMITTED:
        stored = Judgment.objects.filter(
            task_id=task_id, annotator_id=annotator_id, idempotency_key=data.idempotency_key
        ).first()
        if stored is not None:
            return stored
        raise ServiceError("You have already judged this task.", code="conflict")
    if slot.status != AssignmentStatus.LEASED:
        raise ServiceError("You skipped this task; it has gone to someone else.", code="conflict")
    fields = check_judgment(data, slot.mode, slot.rating_enabled, item_ids_to_check(task_id, data))
    judgment = Judgment(
        task_id=task_id,
        annotator_id=annotator_id,
        kind=data.kind,
        shown_order=slot.shown_order,
        **fields,
    )
    record(judgment, slot.assignment_id)
    return judgment


def item_ids_to_check(task_id: int, data: JudgmentInput) -> list[int]:
    """The task's outputs, which matter only to check a ranking or ratings."""
    if data.ranking is None and data.ratings is None:
        return []
    return list(TaskItem.objects.filter(task_id=task_id).values_list("completion_id", flat=True))


def record(judgment: Judgment, assignment_id: int) -> None:
    """Store the judgment, mark the lease submitted and count it on the task (completing the task
    at its quota). On PostgreSQL this runs only when record_if_leased could not."""
    now = timezone.now()
    judgment.save(force_insert=True)
    Assignment.objects.filter(pk=assignment_id).update(
        status=AssignmentStatus.SUBMITTED, finished_at=now
    )
    AnnotationTask.objects.filter(pk=judgment.task_id).update(
        judgment_count=F("judgment_count") + 1,
        status=Case(
            When(judgment_count__gte=F("judgments_wanted") - 1, then=Value(TaskStatus.COMPLETE)),
            default=F("status"),
        ),
    )


def judgment_columns(judgment: Judgment, db: BaseDatabaseWrapper) -> tuple[str, list]:
    """The quoted columns of an INSERT of `judgment`, shown_order last (the statement takes it
    from the lease), and the values of the others, prepared by the model's own fields so that
    defaults and JSON encoding match save(). `db` is the connection itself, not the
    `django.db.connection` proxy, whose every attribute read is a thread-local lookup (4 us here,
    a dozen per field)."""
    fields = [
        f for f in Judgment._meta.concrete_fields if not f.primary_key and f.name != "shown_order"
    ]
    values = [field.get_db_prep_save(field.pre_save(judgment, True), db) for field in fields]
    names = [field.column for field in fields] + [Judgment._meta.get_field("shown_order").column]
    return ", ".join(db.ops.quote_name(name) for name in names), values


# PostgreSQL's path for every submission, without a transaction around it: the judgment is
# checked against its task first (mode, ratings setting and outputs do not change once the task
# exists, so no lock is needed to read them), then stored in one statement on condition that the
# slot is still leased to the annotator. When it is not, nothing is written and the locked path
# runs, to explain why or to return a retry's judgment.
# Locks follow the queue's order: the task row (the CTE) before the assignment (the join's rows
# are locked once the task's row has been produced). Under READ COMMITTED a slot submitted by a
# concurrent retry is re-checked after its lock is released, and then no longer matches.
RECORD_IF_LEASED_SQL = """
WITH task AS (
    SELECT id FROM {task} WHERE id = %s AND mode = %s FOR UPDATE
), slot AS (
    SELECT a.id, a.shown_order FROM {assignment} a JOIN task ON a.task_id = task.id
    WHERE a.annotator_id = %s AND a.status = %s
    FOR UPDATE OF a
), recorded AS (
    INSERT INTO {judgment} ({columns}) SELECT {values}, slot.shown_order FROM slot
    RETURNING id, shown_order
), submitted AS (
    UPDATE {assignment} a SET status = %s, finished_at = %s FROM slot WHERE a.id = slot.id
), counted AS (
    UPDATE {task} t SET judgment_count = t.judgment_count + 1,
        status = CASE WHEN t.judgment_count + 1 >= t.judgments_wanted THEN %s ELSE t.status END
    FROM slot WHERE t.id = %s
)
SELECT id, shown_order FROM recorded
"""


def record_if_leased(annotator_id: int, task_id: int, data: JudgmentInput) -> Judgment | None:
    """The judgment, stored in one statement, or None where the locked path must decide."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return None
    if data.ranking is None and data.ratings is None:
        # A pairwise choice needs nothing from the task but its mode, which the statement checks.
        mode, rating_enabled = data.kind, False
    else:
        rules = (
            AnnotationTask.objects.filter(pk=task_id)
            .values_list("mode", "project__rating_enabled")
            .first()
        )
        if rules is None:
            return None
        mode, rating_enabled = rules
    try:
        fields = check_judgment(data, mode, rating_enabled, item_ids_to_check(task_id, data))
    except ServiceError:
        return None  # the locked path reports it, after the slot's own problems
    judgment = Judgment(task_id=task_id, annotator_id=annotator_id, kind=data.kind, **fields)
    columns, values = judgment_columns(judgment, db)
    sql = RECORD_IF_LEASED_SQL.format(
        judgment=Judgment._meta.db_table,
        assignment=Assignment._meta.db_table,
        task=AnnotationTask._meta.db_table,
        columns=columns,
        values=", ".join(["%s"] * len(values)),
    )
    params = [
        task_id,
        data.kind,
        annotator_id,
        AssignmentStatus.LEASED,
        *values,
        AssignmentStatus.SUBMITTED,
        timezone.now(),
        TaskStatus.COMPLETE,
        task_id,
    ]
    # Inside a caller's transaction a refused key must not poison it: give it a savepoint.
    guard = transaction.atomic() if db.in_atomic_block else nullcontext()
    with guard, db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    judgment.pk, shown_order = row
    judgment.shown_order = json_column(shown_order)
    judgment._state.adding = False
    judgment._state.db = db.alias  # as save() leaves it, so related managers accept it
    return judgment


def newest_judgment(annotator_id: int, project_id: int) -> tuple[int, int] | None:
    """(judgment id, task id) of the annotator's newest judgment in the project."""
    return (
        Judgment.objects.filter(annotator_id=annotator_id, task__project_id=project_id)
        .order_by("-created_at", "-pk")
        .values_list("pk", "task_id")
        .first()
    )


@transaction.atomic
def undo_last_judgment(*, annotator_id: int, project_id: int) -> int:
    """Take back the annotator's newest judgment in the project and lease its task to them again
    (same order on screen), so that the next task they are shown is that one, to answer anew.
    The lease they held meanwhile goes back to the queue. Refused once a reviewer has decided
    the task or pairs have been derived from the judgment. Returns the task's id."""
    newest = newest_judgment(annotator_id, project_id)
    if newest is None:
        raise ServiceError("You have no judgment in this project to take back.", code="not_found")
    judgment_id, task_id = newest
    now = timezone.now()
    held = list(
        Assignment.objects.filter(
            annotator_id=annotator_id,
            task__project_id=project_id,
            status=AssignmentStatus.LEASED,
        )
        .exclude(task_id=task_id)
        .values_list("pk", "task_id", "is_check")
    )
    # Task rows first, in id order, as the queue locks them.
    tasks = sorted({task_id, *(held_task for _, held_task, _ in held)})
    locked = {
        task.pk: task
        for task in AnnotationTask.objects.select_for_update(of=("self",))
        .select_related("alignment_round")
        .filter(pk__in=tasks)
        .order_by("pk")
    }
    # Read again under the locks: an answer, skip or undo may have committed since.
    if newest_judgment(annotator_id, project_id) != newest:
        raise ServiceError(
            "Your answers changed while this was on its way (another tab or a double press); "
            "nothing was taken back. Try again.",
            code="conflict",
        )
    judgment = Judgment.objects.get(pk=judgment_id)
    task = locked[task_id]
    if task.status == TaskStatus.ARCHIVED or (
        task.alignment_round is not None and task.alignment_round.snapshot_id is not None
    ):
        raise ServiceError(
            "This task's round has moved on to training with the answers it had; it can no "
            "longer be taken back.",
            code="conflict",
        )
    # A decision read the judgments made before it (and may have accepted this one); a gold
    # check answered since is the annotator's to take back.
    decided = Adjudication.objects.filter(task_id=task_id).filter(
        Q(accepted_judgment_id=judgment_id) | Q(updated_at__gte=judgment.created_at)
    )
    if decided.exists():
        raise ServiceError(
            "A reviewer has decided this task already; it can no longer be taken back.",
            code="conflict",
        )
    checked = Assignment.objects.filter(task_id=task_id, annotator_id=annotator_id, is_check=True)
    if checked.exists() and not takes_checks(annotator_id, project_id):
        # Taken back, it would be theirs to answer again, with the answer in view.
        raise ServiceError(
            "That answer was a gold check, and you now read the gold answers (Review tab); it "
            "can no longer be taken back.",
            code="conflict",
        )
    if judgment.pairs.exists():
        raise ServiceError(
            "Preference pairs have been derived from this judgment; it can no longer be taken "
            "back.",
            code="conflict",
        )
    judgment.delete()
    Assignment.objects.filter(task_id=task_id, annotator_id=annotator_id).update(
        status=AssignmentStatus.LEASED,
        leased_at=now,
        expires_at=now + lease_duration(),
        finished_at=None,
    )
    AnnotationTask.objects.filter(pk=task_id).update(
        judgment_count=F("judgment_count") - 1,
        status=Case(
            When(status=TaskStatus.COMPLETE, then=Value(TaskStatus.OPEN)), default=F("status")
        ),
    )
    for assignment_id, held_task, check in held:
        # Only a lease still held: one answered, skipped or expired meanwhile has given its
        # slot back or turned it into a judgment.
        released, _ = Assignment.objects.filter(
            pk=assignment_id, status=AssignmentStatus.LEASED
        ).delete()
        if released:
            AnnotationTask.objects.filter(pk=held_task).update(**slot_given_back(check=check))
    return task_id
