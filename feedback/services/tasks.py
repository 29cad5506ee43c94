"""Creating annotation tasks."""

from django.db import transaction

from feedback.errors import ServiceError
from feedback.models import AnnotationTask, Completion, Project, Prompt, TaskItem
from feedback.models.projects import JudgmentMode

MAX_ITEMS_PER_TASK = 9  # number keys 1..9 pick an item in the ranking view


def check_task_shape(project: Project, mode: str, completion_ids: list[int]) -> None:
    if mode not in project.enabled_modes:
        raise ServiceError(
            f"Project {project.name!r} does not enable {mode!r} judgments "
            f"(enabled: {', '.join(project.enabled_modes)})."
        )
    if len(set(completion_ids)) != len(completion_ids):
        raise ServiceError("A task cannot show the same completion twice.")
    if mode == JudgmentMode.PAIRWISE and len(completion_ids) != 2:
        raise ServiceError(
            f"A pairwise task shows exactly 2 completions, not {len(completion_ids)}."
        )
    if not 2 <= len(completion_ids) <= MAX_ITEMS_PER_TASK:
        raise ServiceError(f"A task shows 2 to {MAX_ITEMS_PER_TASK} completions.")


@transaction.atomic
def create_task(
    *,
    prompt_id: int,
    completion_ids: list[int],
    mode: str = JudgmentMode.PAIRWISE,
    judgments_wanted: int | None = None,
    priority: int = 0,
    gold_answer: dict | None = None,
    alignment_round_id: int | None = None,
) -> AnnotationTask:
    """Create a task over completions of one prompt; overlap defaults to the project's."""
    prompt = Prompt.objects.select_related("project").filter(pk=prompt_id).first()
    if prompt is None:
        raise ServiceError(f"No prompt with id {prompt_id}.", code="not_found")
    check_task_shape(prompt.project, mode, completion_ids)
    found = set(
        Completion.objects.filter(pk__in=completion_ids, prompt=prompt).values_list("pk", flat=True)
    )
    missing = [cid for cid in completion_ids if cid not in found]
    if missing:
        raise ServiceError(f"Completions {missing} are not answers to prompt {prompt_id}.")
    wanted = judgments_wanted if judgments_wanted is not None else prompt.project.overlap
    if wanted < 1:
        raise ServiceError("A task wants at least one judgment.")
    task = AnnotationTask.objects.create(
        project=prompt.project,
        prompt=prompt,
        mode=mode,
        judgments_wanted=wanted,
        priority=priority,
        is_gold=gold_answer is not None,
        gold_answer=gold_answer,
        alignment_round_id=alignment_round_id,
    )
    TaskItem.objects.bulk_create(
        TaskItem(task=task, completion_id=cid, position=pos)
        for pos, cid in enumerate(completion_ids)
    )
    return task
