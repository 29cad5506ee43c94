"""Creating annotation tasks: one over chosen completions, or many over a project's outputs."""

from dataclasses import asdict, dataclass
from itertools import combinations

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import (
    Adjudication,
    AnnotationTask,
    Completion,
    ModelVersion,
    Project,
    Prompt,
    TaskItem,
)
from feedback.models.projects import JudgmentMode
from feedback.models.tasks import AssignmentStatus, TaskStatus
from feedback.selectors import task_groups
from feedback.services.bulk import (
    insert_rows,
    lock_referenced,
    may_skip_triggers,
    references_vouched_for,
    reserve_ids,
)
from feedback.services.projects import LOOKUP_BATCH, ids_in_project
from feedback.wording import counted, one_or_many

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
        alignment_round_id=alignment_round_id,
    )
    TaskItem.objects.bulk_create(
        TaskItem(task=task, completion_id=cid, position=pos)
        for pos, cid in enumerate(completion_ids)
    )
    return task


# What a bulk-written task row holds, in order (insert_rows); the rest take their defaults.
TASK_COLUMNS = (
    "id",
    "project_id",
    "prompt_id",
    "mode",
    "judgments_wanted",
    "slots_taken",
    "judgment_count",
    "status",
    "priority",
    "is_gold",
    "created_at",
)
# Prompts handled per round of queries: bounds the IN lists and the rows held in memory.
PROMPTS_PER_BATCH = 1000


@dataclass(frozen=True)
class OpenedTasks:
    created: int  # tasks created
    prompts: int  # prompts that got at least one of them
    already_there: int  # tasks skipped: one of the same mode shows the same completions
    too_few_outputs: int  # prompts skipped: fewer than two outputs to compare

    def as_json(self) -> dict:
        return asdict(self)

    def summary(self, mode: str) -> str:
        """ "3 pairwise tasks created over 2 prompts; 1 was there already; 1 prompt has fewer
        than two outputs." (clauses with nothing to say left out)."""
        clauses = [
            f"{counted(self.created, f'{mode} tasks')} created over "
            f"{counted(self.prompts, 'prompts')}"
        ]
        if self.already_there:
            verb = one_or_many(self.already_there, "was", "were")
            clauses.append(f"{self.already_there} {verb} there already")
        if self.too_few_outputs:
            verb = one_or_many(self.too_few_outputs, "has", "have")
            clauses.append(
                f"{counted(self.too_few_outputs, 'prompts')} {verb} fewer than two outputs"
            )
        return "; ".join(clauses) + "."


def task_groups_for(mode: str, completion_ids: list[int]) -> list[list[int]]:
    """The completion groups a prompt's outputs become: every pair for pairwise judgments (as
    Chatbot Arena pairs models), all of them in one task for a ranking or ratings."""
    if mode == JudgmentMode.PAIRWISE:
        return [list(pair) for pair in combinations(completion_ids, 2)]
    return [completion_ids]


@transaction.atomic
def create_tasks_from_completions(
    *,
    project_id: int,
    mode: str,
    prompt_ids: list[int] | None = None,
    model_version_ids: list[int] | None = None,
    judgments_wanted: int | None = None,
) -> OpenedTasks:
    """Tasks over the outputs that a project already has (imported or generated): for each
    prompt (all of the project's, or `prompt_ids`), its completions (all, or those of
    `model_version_ids`) in `task_groups_for(mode, ...)`. Groups that a task of the same mode
    already shows are skipped, so running it again after adding outputs adds only what is new.
    All or nothing: a prompt with more outputs than a task can show refuses the whole call."""
    project = Project.objects.select_for_update().filter(pk=project_id).first()
    if project is None:
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    if mode not in JudgmentMode.values:
        raise ServiceError(f"Unknown mode {mode!r}; use one of {', '.join(JudgmentMode.values)}.")
    if mode not in project.enabled_modes:
        raise ServiceError(
            f"Project {project.name!r} does not enable {mode!r} judgments "
            f"(enabled: {', '.join(project.enabled_modes)})."
        )
    wanted = project.overlap if judgments_wanted is None else judgments_wanted
    if not 1 <= wanted <= 100:
        raise ServiceError("A task wants 1 to 100 judgments.")
    if model_version_ids is not None:
        ids_in_project(ModelVersion, project_id, model_version_ids, "Model versions")
    if prompt_ids is None:
        all_prompt_ids = list(
            Prompt.objects.filter(project_id=project_id).order_by("pk").values_list("pk", flat=True)
        )
    else:
        all_prompt_ids = ids_in_project(Prompt, project_id, prompt_ids, "Prompts")
    created = prompts_with_tasks = already_there = too_few = 0
    skips_triggers = may_skip_triggers()
    for start in range(0, len(all_prompt_ids), PROMPTS_PER_BATCH):
        batch = all_prompt_ids[start : start + PROMPTS_PER_BATCH]
        outputs = Completion.objects.filter(prompt_id__in=batch)
        if model_version_ids is not None:
            outputs = outputs.filter(model_version_id__in=model_version_ids)
        by_prompt: dict[int, list[int]] = {}
        for prompt_id, completion_id in outputs.order_by("pk").values_list("prompt_id", "pk"):
            by_prompt.setdefault(prompt_id, []).append(completion_id)
        crowded = [pid for pid, ids in by_prompt.items() if len(ids) > MAX_ITEMS_PER_TASK]
        if crowded:
            raise ServiceError(
                f"Prompts {crowded[:10]} have more than {MAX_ITEMS_PER_TASK} outputs, more than "
                "a task can show; choose the model versions to compare. Nothing was created."
            )
        existing = task_groups(mode, [cid for ids in by_prompt.values() for cid in ids])
        new_groups: list[tuple[int, list[int]]] = []
        for prompt_id in batch:
            ids = by_prompt.get(prompt_id, [])
            if len(ids) < 2:
                too_few += 1
                continue
            candidates = task_groups_for(mode, ids)
            groups = [g for g in candidates if frozenset(g) not in existing]
            already_there += len(candidates) - len(groups)
            prompts_with_tasks += bool(groups)
            new_groups += [(prompt_id, group) for group in groups]
        if skips_triggers:
            # The rows the new tasks point at, locked as foreign-key checks would lock them (the
            # project is locked above; the tasks are this transaction's own): a third of the
            # time went to checking each task and item at the commit (feedback/services/bulk.py).
            lock_referenced(Prompt, (prompt_id for prompt_id, _ in new_groups))
            lock_referenced(Completion, (cid for _, group in new_groups for cid in group))
        with references_vouched_for(skips_triggers):
            write_tasks(project.pk, mode, wanted, new_groups)
        created += len(new_groups)
    return OpenedTasks(created, prompts_with_tasks, already_there, too_few)


def write_tasks(
    project_id: int, mode: str, wanted: int, groups: list[tuple[int, list[int]]]
) -> None:
    """Open tasks over (prompt id, completion ids) groups, through the import's bulk writer
    (COPY on PostgreSQL): Django's bulk_create spent 250 µs a task building model objects."""
    item_count = sum(len(group) for _, group in groups)
    ids = reserve_ids({AnnotationTask: len(groups), TaskItem: item_count})
    now = timezone.now()
    insert_rows(
        AnnotationTask,
        TASK_COLUMNS,
        (
            (
                task_id,
                project_id,
                prompt_id,
                mode,
                wanted,
                0,
                0,
                TaskStatus.OPEN.value,
                0,
                False,
                now,
            )
            for task_id, (prompt_id, _) in zip(ids[AnnotationTask], groups, strict=True)
        ),
    )
    item_ids = iter(ids[TaskItem])
    insert_rows(
        TaskItem,
        ("id", "task_id", "completion_id", "position"),
        (
            (next(item_ids), task_id, completion_id, position)
            for task_id, (_, group) in zip(ids[AnnotationTask], groups, strict=True)
            for position, completion_id in enumerate(group)
        ),
    )


@transaction.atomic
def delete_untouched_tasks(*, project_id: int, mode: str | None = None) -> int:
    """Delete the project's open tasks (of `mode`, or all) that nobody has touched: no judgment,
    skip or flag, no reviewer's decision, not gold and not part of an alignment round; how many
    went. A live lease on one goes with it, and its annotator is given another task. For taking
    back tasks made by mistake: nothing is lost that an annotator or reviewer put in."""
    if not Project.objects.filter(pk=project_id).exists():
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    if mode is not None and mode not in JudgmentMode.values:
        raise ServiceError(f"Unknown mode {mode!r}; use one of {', '.join(JudgmentMode.values)}.")
    untouched = (
        AnnotationTask.objects.filter(
            project_id=project_id,
            status=TaskStatus.OPEN,
            judgment_count=0,
            is_gold=False,
            alignment_round__isnull=True,
        )
        .exclude(
            # Decided before anyone judged it, as gold answers can be (then unmarked).
            Exists(Adjudication.objects.filter(task=OuterRef("pk")))
        )
        .exclude(assignments__status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED])
    )
    if mode is not None:
        untouched = untouched.filter(mode=mode)
    # Locked: a submission to one of them waits, then finds its task gone.
    ids = list(untouched.select_for_update().values_list("pk", flat=True))
    for start in range(0, len(ids), LOOKUP_BATCH):
        AnnotationTask.objects.filter(pk__in=ids[start : start + LOOKUP_BATCH]).delete()
    return len(ids)
