"""Adjudication: a reviewer's final word on a task, accepting one judgment or overriding them all.

A task has at most one adjudication; adjudicating again replaces the answer and records who made
the change and when (`reviewer`, `updated_at`).
"""

from django.contrib.auth import get_user_model
from django.db import transaction

from feedback.errors import ServiceError
from feedback.models import Adjudication, AnnotationTask, Judgment, Membership, Role
from feedback.models.judgments import AdjudicationAction, PairwiseChoice
from feedback.models.projects import JudgmentMode
from feedback.models.tasks import TaskStatus

from .judgments import check_ranking

MAX_NOTE_CHARS = 10_000


def require_reviewer(user_id: int, project_id: int) -> None:
    user = get_user_model().objects.filter(pk=user_id).only("is_staff").first()
    if user is None:
        raise ServiceError(f"No user with id {user_id}.", code="not_found")
    if user.is_staff:
        return
    if not Membership.objects.filter(
        user_id=user_id, project_id=project_id, role__in=[Role.REVIEWER, Role.ADMIN]
    ).exists():
        raise ServiceError(
            "Only reviewers and admins of this project adjudicate.", code="forbidden"
        )


def reviewed_task(reviewer_id: int, task_id: int, project_id: int | None) -> AnnotationTask:
    """The task, locked, once the reviewer may decide it; given `project_id`, a task of another
    project is not found."""
    tasks = AnnotationTask.objects.select_for_update().filter(pk=task_id)
    if project_id is not None:
        tasks = tasks.filter(project_id=project_id)
    task = tasks.first()
    if task is None:
        where = " in this project" if project_id is not None else ""
        raise ServiceError(f"No task with id {task_id}{where}.", code="not_found")
    require_reviewer(reviewer_id, task.project_id)
    return task


@transaction.atomic
def adjudicate_task(
    *,
    reviewer_id: int,
    task_id: int,
    action: str,
    judgment_id: int | None = None,
    choice: str | None = None,
    ranking: list[list[int]] | None = None,
    note: str = "",
    project_id: int | None = None,
) -> Adjudication:
    """Accept judgment `judgment_id` of the task, or override with a `choice` (pairwise tasks)
    or a `ranking` (ranking and rating tasks: groups of completion ids, best first)."""
    task = reviewed_task(reviewer_id, task_id, project_id)
    if len(note) > MAX_NOTE_CHARS:
        raise ServiceError(f"Keep the note under {MAX_NOTE_CHARS} characters.")
    fields: dict = {"accepted_judgment": None, "choice": None, "ranking": None}
    if action == AdjudicationAction.ACCEPT:
        judgment = Judgment.objects.filter(pk=judgment_id, task_id=task_id).first()
        if judgment is None:
            raise ServiceError("Pick one of this task's judgments to accept.")
        fields["accepted_judgment"] = judgment
    elif action == AdjudicationAction.OVERRIDE:
        if task.mode == JudgmentMode.PAIRWISE:
            if choice not in PairwiseChoice.values:
                raise ServiceError("Override with A, B, tie or both bad.")
            fields["choice"] = choice
        else:
            item_ids = list(task.items.values_list("completion_id", flat=True))
            fields["ranking"] = check_ranking(ranking, item_ids)
    else:
        raise ServiceError("Accept a judgment or override it.")
    adjudication, _ = Adjudication.objects.update_or_create(
        task=task,
        defaults={"reviewer_id": reviewer_id, "action": action, "note": note, **fields},
    )
    if task.is_gold:
        # A gold task's known answer is its adjudication: it follows a change of mind.
        task.gold_answer = gold_answer_of(adjudication)
        task.save(update_fields=["gold_answer"])
    return adjudication


def gold_answer_of(adjudication: Adjudication) -> dict:
    """The adjudicated answer in a gold task's terms: {"choice": ...} or {"ranking": ...};
    refused where it cannot be one."""
    if adjudication.action == AdjudicationAction.ACCEPT:
        judgment = adjudication.accepted_judgment
        choice, ranking = judgment.choice, judgment.ranking
    else:
        choice, ranking = adjudication.choice, adjudication.ranking
    if choice:
        return {"choice": choice}
    if len(ranking) < 2:
        # Every output tied: no answer to it would be right or wrong, so it would score nobody.
        raise ServiceError("A gold ranking orders the outputs: give at least two groups.")
    return {"ranking": ranking}


@transaction.atomic
def mark_gold(
    *, reviewer_id: int, task_id: int, is_gold: bool, project_id: int | None = None
) -> AnnotationTask:
    """Make the task a gold task whose known answer is its adjudication, or an ordinary task
    again. A gold task is served, now and then, to annotators who have not seen it (the
    project's gold_percent), and their answers score their gold accuracy; the judgments it
    had before score nobody, as the answer was decided from them. Unmarked, the checks it was
    served stay checks (not preference data)."""
    task = reviewed_task(reviewer_id, task_id, project_id)
    if not is_gold:
        task.is_gold, task.gold_answer = False, None
        task.save(update_fields=["is_gold", "gold_answer"])
        return task
    if task.mode == JudgmentMode.RATING:
        raise ServiceError(
            "A gold answer is a pairwise choice or a ranking; rating tasks have neither."
        )
    adjudication = (
        Adjudication.objects.select_related("accepted_judgment").filter(task=task).first()
    )
    if adjudication is None:
        raise ServiceError("Adjudicate the task first: its gold answer is the adjudicated one.")
    answer = gold_answer_of(adjudication)
    if task.alignment_round_id is not None:
        raise ServiceError(
            "A round's task cannot be gold: the round counts its own judgments, and gold checks "
            "would add to them. Make gold of tasks outside rounds."
        )
    if not task.is_gold:
        # Its quota ends here, with the judgments it has (and the leases out): whatever it is
        # served from now on is a check, a judgment more than it wanted (see the queue). It is
        # open only while a lease is out.
        task.judgments_wanted = max(task.slots_taken, 1)
        if task.status == TaskStatus.OPEN and task.judgment_count >= task.slots_taken:
            task.status = TaskStatus.COMPLETE
    task.is_gold, task.gold_answer = True, answer
    task.save(update_fields=["is_gold", "gold_answer", "judgments_wanted", "status"])
    return task


@transaction.atomic
def set_gold_answer(
    *,
    reviewer_id: int,
    task_id: int,
    judgment_id: int | None = None,
    choice: str | None = None,
    ranking: list[list[int]] | None = None,
    note: str = "",
    project_id: int | None = None,
) -> AnnotationTask:
    """Make the task gold with its known answer in one step: decide it (accepting judgment
    `judgment_id`, or giving the `choice` or `ranking`) and mark it gold, or do neither. A task
    nobody has judged can be made gold so, its answer known up front (scripts seed checks
    this way)."""
    adjudicate_task(
        reviewer_id=reviewer_id,
        task_id=task_id,
        action=AdjudicationAction.OVERRIDE if judgment_id is None else AdjudicationAction.ACCEPT,
        judgment_id=judgment_id,
        choice=choice,
        ranking=ranking,
        note=note,
        project_id=project_id,
    )
    return mark_gold(reviewer_id=reviewer_id, task_id=task_id, is_gold=True)
