"""Reads for pages and the API: querysets scoped to what a user may see, and small aggregates."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    When,
)
from django.utils import timezone

from feedback.models import (
    Adjudication,
    AnnotationTask,
    ApiToken,
    Assignment,
    Completion,
    ExportSnapshot,
    ImportBatch,
    Invitation,
    Judgment,
    Membership,
    PreferencePair,
    Project,
    Prompt,
    PromptSet,
    Role,
    TaskItem,
)
from feedback.models.projects import JudgmentMode
from feedback.models.prompts import is_cut_off
from feedback.models.tasks import SkipReason, TaskStatus
from feedback.pairs import policy_changes
from feedback.raw_rows import json_column


def projects_for(user) -> QuerySet[Project]:
    """Projects the user belongs to; staff see every project."""
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def role_in(user, project_id: int) -> str | None:
    """The user's role in a project (staff count as admin), or None for non-members."""
    if user.is_staff:
        return Role.ADMIN
    return (
        Membership.objects.filter(user=user, project_id=project_id)
        .values_list("role", flat=True)
        .first()
    )


def has_role(user, project_id: int, *roles: str) -> bool:
    return role_in(user, project_id) in roles


@dataclass(frozen=True)
class QueueSummary:
    project: Project
    judged_today: int
    judged_total: int
    open_tasks: int


def queue_summaries_for(user) -> list[QueueSummary]:
    """Per project: the annotator's judgments today and in total, and tasks still open to them."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    # From the user's own judgments: counting through each project's tasks read all of their
    # judgments (a second and a half on a project of a million).
    judged = {
        row["task__project_id"]: row
        for row in Judgment.objects.filter(annotator=user)
        .values("task__project_id")
        .annotate(total=Count("pk"), today=Count("pk", filter=Q(created_at__gte=start_of_day)))
    }
    summaries = []
    for project in projects_for(user):
        # Gold tasks are never open work (a check leased reopens one; counted, it would tell).
        open_tasks = (
            AnnotationTask.objects.filter(project=project, status=TaskStatus.OPEN, is_gold=False)
            .exclude(assignments__annotator=user)
            .count()
        )
        mine = judged.get(project.pk, {"today": 0, "total": 0})
        summaries.append(QueueSummary(project, mine["today"], mine["total"], open_tasks))
    return summaries


def task_in_project(task_id: int, project_id: int) -> AnnotationTask | None:
    return AnnotationTask.objects.filter(pk=task_id, project_id=project_id).first()


@dataclass(frozen=True)
class TaskOutput:
    completion_id: int
    position: int
    text: str
    finish_reason: str | None = None  # from the completion's generation settings

    @property
    def cut_off(self) -> bool:
        return is_cut_off(self.finish_reason)


@dataclass(frozen=True)
class TaskShown:
    """What a task shows an annotator: its project and mode, its prompt (text, or chat messages)
    and its outputs by completion id."""

    project_id: int
    mode: str
    prompt_text: str
    prompt_messages: list | None
    outputs: dict[int, TaskOutput]


# In SQL: the queue's JSON endpoints read this once per judgment, and compiling the ORM query cost
# more CPU than running it (benchmarks/queue_throughput.py). On PostgreSQL the lease statement
# selects the same (feedback/services/queue.py).
TASK_SHOWN_SQL = """
SELECT t.project_id, t.mode, p.text, p.messages, i.completion_id, i.position, c.text,
       c.generation_settings
FROM {item} i JOIN {task} t ON t.id = i.task_id JOIN {prompt} p ON p.id = t.prompt_id
JOIN {completion} c ON c.id = i.completion_id
WHERE i.task_id = %s
"""


def task_shown(task_id: int) -> TaskShown:
    sql = TASK_SHOWN_SQL.format(
        item=TaskItem._meta.db_table,
        task=AnnotationTask._meta.db_table,
        prompt=Prompt._meta.db_table,
        completion=Completion._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id])
        rows = cursor.fetchall()
    if not rows:
        raise ValueError(f"Task {task_id} has no outputs.")
    project_id, mode, prompt_text, prompt_messages = rows[0][:4]
    outputs = {
        cid: TaskOutput(cid, position, text, json_column(settings).get("finish_reason"))
        for cid, position, text, settings in (row[4:] for row in rows)
    }
    return TaskShown(project_id, mode, prompt_text, json_column(prompt_messages), outputs)


def judgments_of_task(task_id: int) -> QuerySet[Judgment]:
    return (
        Judgment.objects.filter(task_id=task_id).select_related("annotator").order_by("created_at")
    )


def judged_today(user, project_id: int) -> int:
    """How many judgments the user has made in the project since local midnight."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return Judgment.objects.filter(
        annotator=user, task__project_id=project_id, created_at__gte=start_of_day
    ).count()


def judgment_answer(judgment: Judgment) -> object:
    """What a judgment says, in a form where equal answers compare equal (ties in any order)."""
    if judgment.kind == JudgmentMode.PAIRWISE:
        return judgment.choice
    if judgment.kind == JudgmentMode.RANKING:
        return tuple(frozenset(group) for group in judgment.ranking or [])
    return tuple(sorted((judgment.ratings or {}).items()))


FLAG_REASONS = [SkipReason.UNSAFE, SkipReason.BROKEN, SkipReason.UNREADABLE]


def distinct_answers() -> Case:
    """How many different answers a task's judgments give: more than one, they disagree."""
    return Case(
        When(mode=JudgmentMode.PAIRWISE, then=Count("judgments__choice", distinct=True)),
        When(mode=JudgmentMode.RANKING, then=Count("judgments__ranking", distinct=True)),
        default=Count("judgments__ratings", distinct=True),
    )


def tasks_for_review(
    project_id: int, *, disagreements_only: bool = False, flagged_only: bool = False
) -> QuerySet[AnnotationTask]:
    """Tasks annotators judged or flagged at least once, newest first, with their adjudication;
    count their answers and flags a page at a time with review_counts (counting them for a
    project's million tasks only to show twenty took seconds). Imported battles' verdicts are
    not annotators' work and are left out."""
    # Flagged by a skip, or along with an answer.
    flagged = Exists(
        Assignment.objects.filter(task=OuterRef("pk"), skip_reason__in=FLAG_REASONS)
    ) | Exists(Judgment.objects.filter(task=OuterRef("pk")).exclude(flags=[]))
    tasks = (
        AnnotationTask.objects.filter(project_id=project_id, import_batch__isnull=True)
        .select_related("prompt", "adjudication__reviewer")
        .filter(flagged if flagged_only else Q(judgment_count__gte=1) | flagged)
        .order_by("-id")
    )
    if disagreements_only:
        # Two answers take two judgments: tasks with fewer are left out before counting.
        tasks = (
            tasks.filter(judgment_count__gte=2)
            .alias(answers=distinct_answers())
            .filter(answers__gt=1)
        )
    return tasks


def gold_checks(project_id: int) -> dict[int, set[int]]:
    """The project's gold checks by task: ids of the judgments given to a task served as a gold
    check, except one a reviewer's decision accepted (the answer was decided from it). Read
    from the checks' leases (few, and indexed), not from every judgment."""
    checked = set(
        Assignment.objects.filter(is_check=True, task__project_id=project_id).values_list(
            "task_id", "annotator_id"
        )
    )
    checks = defaultdict(set)
    for task_id, annotator_id, judgment_id in (
        Judgment.objects.filter(task_id__in={task_id for task_id, _ in checked})
        .exclude(pk=F("task__adjudication__accepted_judgment"))
        .values_list("task_id", "annotator_id", "pk")
    ):
        if (task_id, annotator_id) in checked:
            checks[task_id].add(judgment_id)
    return checks


def has_imported_verdicts(project_id: int) -> bool:
    return ImportBatch.objects.filter(project_id=project_id, format="arena").exists()


def review_counts(task_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(distinct answers, flags) of each task: skips for a flag's reason, and answers given with
    flags."""
    skips = Count("assignments", filter=Q(assignments__skip_reason__in=FLAG_REASONS), distinct=True)
    flagged_answers = Count("judgments", filter=~Q(judgments__flags=[]), distinct=True)
    return {
        pk: (answers, skipped + answered)
        for pk, answers, skipped, answered in AnnotationTask.objects.filter(pk__in=task_ids)
        .annotate(answers=distinct_answers(), skips=skips, flagged_answers=flagged_answers)
        .values_list("pk", "answers", "skips", "flagged_answers")
    }


def flags_of_task(task_id: int) -> QuerySet[Assignment]:
    """Annotators' flags on a task (skips for a reason other than a plain skip), oldest first."""
    return (
        Assignment.objects.filter(task_id=task_id, skip_reason__in=FLAG_REASONS)
        .select_related("annotator")
        .order_by("finished_at")
    )


def adjudication_of(task_id: int) -> Adjudication | None:
    return (
        Adjudication.objects.select_related("reviewer", "accepted_judgment__annotator")
        .filter(task_id=task_id)
        .first()
    )


def api_tokens_of(user) -> QuerySet[ApiToken]:
    """The user's API tokens, active ones first, newest first within each."""
    return user.api_tokens.order_by(F("revoked_at").desc(nulls_first=True), "-created_at")


def task_groups(mode: str, completion_ids: list[int]) -> set[frozenset[int]]:
    """The completion sets shown by tasks of `mode` (open or not) that show any of these
    completions: what creating tasks over them again would duplicate."""
    if connection.vendor == "postgresql":
        # The ids as one array: Django's IN spent 16 ms building each batch's 2,000 placeholders,
        # and joined as a subquery PostgreSQL scanned every project's tasks.
        items, tasks = TaskItem._meta.db_table, AnnotationTask._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT i.task_id, i.completion_id FROM "{items}" i '  # noqa: S608 - ours
                f'JOIN "{tasks}" t ON t.id = i.task_id WHERE t.mode = %s AND i.task_id = ANY('
                f'ARRAY(SELECT task_id FROM "{items}" WHERE completion_id = ANY(%s)))',
                [mode, list(completion_ids)],
            )
            rows = cursor.fetchall()
    else:
        shown = TaskItem.objects.filter(completion_id__in=completion_ids).values("task_id")
        rows = TaskItem.objects.filter(task_id__in=shown, task__mode=mode).values_list(
            "task_id", "completion_id"
        )
    members: dict[int, set[int]] = {}
    for task_id, completion_id in rows:
        members.setdefault(task_id, set()).add(completion_id)
    return {frozenset(ids) for ids in members.values()}


@dataclass(frozen=True)
class PolicyPairs:
    policy: str
    pairs: int
    ties: int
    updated_at: datetime  # of the newest pair
    # Settings of a derived policy that differ from the defaults ("ties: keep").
    changes: tuple[str, ...] = ()


def pair_policies(project_id: int) -> list[PolicyPairs]:
    """The pair policies the project's pairs were made under, with how many each made."""
    rows = (
        PreferencePair.objects.filter(project_id=project_id)
        .values("policy")
        .annotate(
            pairs=Count("pk"), ties=Count("pk", filter=Q(is_tie=True)), updated_at=Max("created_at")
        )
        .order_by("policy")
    )
    derived = Project.objects.filter(pk=project_id).values_list("pair_policies", flat=True).first()
    return [
        PolicyPairs(**row, changes=tuple(policy_changes((derived or {}).get(row["policy"], {}))))
        for row in rows
    ]


@dataclass(frozen=True)
class ProjectContents:
    prompts: int
    outputs: int
    tasks: int
    open_tasks: int


def project_contents(project_id: int) -> ProjectContents:
    tasks = AnnotationTask.objects.filter(project_id=project_id).aggregate(
        # Gold tasks are never open work (see queue_summaries).
        total=Count("pk"),
        open=Count("pk", filter=Q(status=TaskStatus.OPEN, is_gold=False)),
    )
    return ProjectContents(
        prompts=Prompt.objects.filter(project_id=project_id).count(),
        outputs=Completion.objects.filter(prompt__project_id=project_id).count(),
        tasks=tasks["total"],
        open_tasks=tasks["open"],
    )


def recent_imports(project_id: int, limit: int = 10) -> QuerySet[ImportBatch]:
    return (
        ImportBatch.objects.filter(project_id=project_id)
        .select_related("created_by")
        .order_by("-created_at")[:limit]
    )


def prompt_sets_of(project_id: int) -> QuerySet[PromptSet]:
    return (
        PromptSet.objects.filter(project_id=project_id)
        .annotate(prompt_count=Count("prompts"))
        .order_by("name")
    )


def recent_exports(project_id: int, limit: int = 10) -> QuerySet[ExportSnapshot]:
    return ExportSnapshot.objects.filter(project_id=project_id).select_related("created_by")[:limit]


def members_of(project_id: int) -> QuerySet[Membership]:
    """The project's members, admins first, then by name."""
    order = Case(When(role=Role.ADMIN, then=0), When(role=Role.REVIEWER, then=1), default=2)
    return (
        Membership.objects.filter(project_id=project_id)
        .select_related("user")
        .order_by(order, "user__username")
    )


def memberships_of(user) -> dict[int, str]:
    """The user's role per project id, for the projects they are a member of."""
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


def open_invitations_of(project_id: int) -> QuerySet[Invitation]:
    """The project's invitation links that still work, newest first."""
    return (
        Invitation.objects.filter(
            project_id=project_id, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .select_related("created_by")
        .order_by("-created_at")
    )


# --- the prompt browser ----------------------------------------------------------------------

PROMPT_PAGE_SIZE = 50


@dataclass(frozen=True)
class PromptRow:
    prompt: Prompt
    outputs: int
    tasks: int
    judgments: int


@dataclass(frozen=True)
class PromptPage:
    rows: list[PromptRow]
    older_than: int | None  # the `before` that shows the next page, when there is one


def browse_prompts(
    project_id: int,
    *,
    query: str = "",
    split: str = "",
    model_version_id: int | None = None,
    has_tasks: bool | None = None,
    before: int | None = None,
) -> PromptPage:
    """A page of the project's prompts, newest first, with how many outputs, tasks and judgments
    each has. `query` matches text and chat messages (case-insensitive); `model_version_id`
    keeps the prompts that version answered; `has_tasks` False finds the outputs nobody has been
    asked to judge yet. Pages by id, so a page costs the same however deep."""
    prompts = Prompt.objects.filter(project_id=project_id)
    if query:
        prompts = prompts.filter(Q(text__icontains=query) | Q(messages__icontains=query))
    if split:
        prompts = prompts.filter(split=split)
    if model_version_id is not None:
        prompts = prompts.filter(
            pk__in=Completion.objects.filter(model_version_id=model_version_id).values("prompt_id")
        )
    if has_tasks is not None:
        tasked = Exists(AnnotationTask.objects.filter(prompt_id=OuterRef("pk")))
        prompts = prompts.filter(tasked if has_tasks else ~tasked)
    if before is not None:
        prompts = prompts.filter(pk__lt=before)
    page = list(prompts.order_by("-pk")[: PROMPT_PAGE_SIZE + 1])
    more = len(page) > PROMPT_PAGE_SIZE
    page = page[:PROMPT_PAGE_SIZE]
    ids = [prompt.pk for prompt in page]
    outputs = counts_by_prompt(Completion.objects.filter(prompt_id__in=ids), "prompt_id")
    tasks = counts_by_prompt(AnnotationTask.objects.filter(prompt_id__in=ids), "prompt_id")
    judgments = counts_by_prompt(
        Judgment.objects.filter(task__prompt_id__in=ids), "task__prompt_id"
    )
    rows = [
        PromptRow(p, outputs.get(p.pk, 0), tasks.get(p.pk, 0), judgments.get(p.pk, 0)) for p in page
    ]
    return PromptPage(rows, page[-1].pk if more else None)


def counts_by_prompt(rows: QuerySet, prompt_field: str) -> dict[int, int]:
    return dict(rows.values_list(prompt_field).annotate(n=Count("pk")).order_by())


@dataclass(frozen=True)
class PromptDetail:
    prompt: Prompt
    completions: list[Completion]  # with model_version, by version name then age
    tasks: list[AnnotationTask]  # newest first, with their items and judgments


def prompt_detail(project_id: int, prompt_id: int) -> PromptDetail | None:
    prompt = (
        Prompt.objects.filter(project_id=project_id, pk=prompt_id)
        .select_related("import_batch")
        .first()
    )
    if prompt is None:
        return None
    completions = list(
        prompt.completions.select_related("model_version").order_by(
            F("model_version__name").asc(nulls_last=True), "pk"
        )
    )
    tasks = prompt.tasks.prefetch_related(
        Prefetch("items", queryset=TaskItem.objects.order_by("position")),
        Prefetch(
            "judgments",
            queryset=Judgment.objects.only(
                "task_id", "kind", "choice", "strength", "ranking", "ratings"
            ).order_by("pk"),
        ),
    ).order_by("-pk")
    return PromptDetail(prompt, completions, list(tasks))
