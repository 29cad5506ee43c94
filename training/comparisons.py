"""Side-by-side comparison of two model versions on a prompt set.

Reads: each version's newest output per prompt, and the head-to-head record from pairwise
judgments on tasks that put one output of each version side by side (win rate with a Wilson
interval, and the Bradley-Terry gap in Elo points). Writes: blind pairwise tasks over those
outputs, which feed the leaderboard like any other judgment, and a generate job for the prompts
a version has not answered yet.
"""

from __future__ import annotations

import difflib
import math
import random
from dataclasses import dataclass, field, replace

from django.db import transaction
from django.db.models import QuerySet

from feedback import selectors as feedback_selectors
from feedback import services as feedback_services
from feedback.errors import ServiceError
from feedback.models import (
    AnnotationTask,
    Completion,
    ModelVersion,
    Project,
    Prompt,
    PromptSet,
    TaskItem,
)
from feedback.models.judgments import PairwiseChoice
from feedback.models.projects import JudgmentMode
from feedback.models.prompts import ModelMethod, ModelStatus
from feedback.ratings import (
    EloScale,
    WinRate,
    bradley_terry,
    count_outcomes,
    effective_judgments,
    pairwise_win_rate,
)
from training import jobs
from training.models import JobKind, JobStatus, TrainingJob

# difflib is quadratic in the worst case; the start of two long answers tells them apart well enough.
SIMILARITY_CHARS = 2000
LOOKUP_CHUNK = 10_000  # ids per query: both databases cap a statement's parameters
SHOW_CHOICES = (
    ("all", "All prompts, in order"),
    ("different", "Most different outputs first"),
    ("split", "Only where judges disagree"),
)


# ---- Pure maths -------------------------------------------------------------------------------


def text_similarity(a: str, b: str) -> float:
    """difflib's ratio (2 * matches / total length): 1.0 for equal texts, 0.0 for nothing shared."""
    return difflib.SequenceMatcher(None, a[:SIMILARITY_CHARS], b[:SIMILARITY_CHARS]).ratio()


@dataclass(frozen=True)
class Record:
    """Judgments of one pairing from version A's side; a tie or "both bad" counts as a tie."""

    wins: int = 0
    ties: int = 0
    losses: int = 0

    @property
    def total(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def judges_split(self) -> bool:
        """Judges gave more than one answer (A better, B better, or tie)."""
        return sum(1 for n in (self.wins, self.ties, self.losses) if n) > 1

    def add(self, outcome: float) -> Record:
        if outcome == 1.0:
            return Record(self.wins + 1, self.ties, self.losses)
        if outcome == 0.0:
            return Record(self.wins, self.ties, self.losses + 1)
        return Record(self.wins, self.ties + 1, self.losses)


@dataclass(frozen=True)
class HeadToHead:
    """Win rate of A over B with its interval, and the Bradley-Terry strength gap in Elo points.

    With two players the Bradley-Terry MLE gap is the logit of the win rate (ties as half wins),
    so its interval is the logit of the Wilson bounds; None where a bound is 0 or 1 (unbounded).
    """

    record: Record
    win_rate: WinRate
    confidence: float
    gap: float | None
    gap_lower: float | None
    gap_upper: float | None
    gap_note: str = ""

    @property
    def has_judgments(self) -> bool:
        return self.record.total > 0


def logit_points(p: float, scale: EloScale) -> float | None:
    if not 0.0 < p < 1.0:
        return None
    return scale.points_per_unit * math.log(p / (1.0 - p))


ELO = EloScale()


def head_to_head(
    record: Record,
    *,
    per_prompt: list[Record] | None = None,
    confidence: float = 0.95,
    scale: EloScale = ELO,
) -> HeadToHead:
    """The summary the comparison page shows for a record of A-versus-B judgments. With the
    record `per_prompt`, the interval counts a prompt's judgments (several annotators') as
    alike, not as independent: with five to a task it was too narrow by half."""
    effective = (
        effective_judgments([(r.wins, r.ties, r.losses) for r in per_prompt])
        if per_prompt
        else None
    )
    rate = pairwise_win_rate(
        record.wins, record.ties, record.losses, confidence=confidence, effective_n=effective
    )
    if record.total == 0:
        return HeadToHead(
            record, rate, confidence, None, None, None, "No judgments between them yet."
        )
    # Players 0 (A) and 1 (B), one row per judgment from A's side.
    outcomes = [1.0] * record.wins + [0.5] * record.ties + [0.0] * record.losses
    counts = count_outcomes([0] * record.total, [1] * record.total, outcomes, 2)
    try:
        strength = bradley_terry(counts)
    except ValueError:
        winner = "A" if record.wins else "B"
        return HeadToHead(
            record,
            rate,
            confidence,
            None,
            logit_points(rate.lower, scale),
            logit_points(rate.upper, scale),
            f"{winner} won every judgment, so the gap has no finite estimate yet.",
        )
    gap = scale.points_per_unit * float(strength[0] - strength[1])
    return HeadToHead(
        record,
        rate,
        confidence,
        gap,
        logit_points(rate.lower, scale),
        logit_points(rate.upper, scale),
    )


def outcome_for_a(choice: str, a_position: int) -> float:
    """A pairwise choice names task positions ("a" is position 0); turn it into A's result."""
    if choice in (PairwiseChoice.TIE, PairwiseChoice.BOTH_BAD):
        return 0.5
    winner_position = 0 if choice == PairwiseChoice.A else 1
    return 1.0 if winner_position == a_position else 0.0


# ---- Reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRow:
    """A prompt with each version's newest output, by id; `shown` loads the objects of the rows
    on a page (a comparison over all of a big project's prompts has hundreds of thousands)."""

    prompt_id: int
    output_a: int | None
    output_b: int | None
    similarity: float | None
    record: Record
    prompt: Prompt | None = None
    completion_a: Completion | None = None
    completion_b: Completion | None = None

    @property
    def is_complete(self) -> bool:
        return self.output_a is not None and self.output_b is not None


@dataclass(frozen=True)
class Comparison:
    version_a: ModelVersion
    version_b: ModelVersion
    prompt_set: PromptSet | None  # None: every prompt of the project
    rows: list[PromptRow]  # the prompts in scope that either version answered
    summary: HeadToHead
    prompts: int = 0  # in scope
    missing_a: int = 0  # prompts in scope that A has not answered
    missing_b: int = 0
    pending_jobs: list[TrainingJob] = field(default_factory=list)

    @property
    def scope_name(self) -> str:
        return self.prompt_set.name if self.prompt_set else "all prompts"

    @property
    def comparable(self) -> int:
        return sum(1 for row in self.rows if row.is_complete)


def newest_outputs(version_id: int, prompts: QuerySet[Prompt]) -> dict[int, int]:
    """The id of the version's newest completion for each of `prompts` that has one."""
    newest: dict[int, int] = {}
    # The prompts go in as a subquery: a project's million prompts are more than a statement's
    # parameters may be.
    for prompt_id, completion_id in (
        Completion.objects.filter(model_version_id=version_id, prompt__in=prompts.values("pk"))
        .order_by("prompt_id", "-pk")
        .values_list("prompt_id", "pk")
    ):
        newest.setdefault(prompt_id, completion_id)
    return newest


def completion_texts(completion_ids: list[int]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for start in range(0, len(completion_ids), LOOKUP_CHUNK):
        chunk = completion_ids[start : start + LOOKUP_CHUNK]
        texts.update(Completion.objects.filter(pk__in=chunk).values_list("pk", "text"))
    return texts


def shown(rows: list[PromptRow]) -> list[PromptRow]:
    """The rows with their prompts and outputs loaded, to show them."""
    prompts = Prompt.objects.in_bulk([row.prompt_id for row in rows])
    outputs = Completion.objects.in_bulk(
        [output for row in rows for output in (row.output_a, row.output_b) if output is not None]
    )
    return [
        replace(
            row,
            prompt=prompts[row.prompt_id],
            completion_a=outputs.get(row.output_a),
            completion_b=outputs.get(row.output_b),
        )
        for row in rows
    ]


def records_between(
    version_a_id: int, version_b_id: int, prompts: QuerySet[Prompt]
) -> dict[int, Record]:
    """Per prompt, the judgments on pairwise tasks that show one output of A and one of B."""
    # Each filter() call joins the task's items anew: one item of A, one of B. PostgreSQL starts
    # from the two versions' outputs, not from every task of the prompts in scope.
    between = (
        AnnotationTask.objects.filter(mode=JudgmentMode.PAIRWISE, prompt__in=prompts.values("pk"))
        .filter(items__completion__model_version_id=version_a_id)
        .filter(items__completion__model_version_id=version_b_id)
        .values("pk")
    )
    records: dict[int, Record] = {}
    # A's item in each such task, once per judgment of the task.
    for prompt_id, a_position, choice in TaskItem.objects.filter(
        task__in=between, completion__model_version_id=version_a_id, task__judgments__isnull=False
    ).values_list("task__prompt_id", "position", "task__judgments__choice"):
        records[prompt_id] = records.get(prompt_id, Record()).add(outcome_for_a(choice, a_position))
    return records


def compare_versions(
    *, project_id: int, version_a_id: int, version_b_id: int, prompt_set_id: int | None
) -> Comparison:
    """The two versions' outputs side by side on the prompts in scope that either answered,
    with the judgments between them."""
    version_a, version_b = versions_to_compare(project_id, version_a_id, version_b_id)
    prompt_set, prompts = prompts_in_scope(project_id, prompt_set_id)
    outputs_a = newest_outputs(version_a.pk, prompts)
    outputs_b = newest_outputs(version_b.pk, prompts)
    per_prompt = records_between(version_a.pk, version_b.pk, prompts)
    both = [p for p in outputs_a if p in outputs_b]
    texts = completion_texts([output for p in both for output in (outputs_a[p], outputs_b[p])])
    rows = []
    total = Record()
    for prompt_id in sorted(outputs_a.keys() | outputs_b.keys()):
        a, b = outputs_a.get(prompt_id), outputs_b.get(prompt_id)
        record = per_prompt.get(prompt_id, Record())
        total = Record(
            total.wins + record.wins, total.ties + record.ties, total.losses + record.losses
        )
        similarity = text_similarity(texts[a], texts[b]) if a and b else None
        rows.append(PromptRow(prompt_id, a, b, similarity, record))
    pending = list(
        TrainingJob.objects.filter(
            model_version_id__in=[version_a.pk, version_b.pk],
            kind=JobKind.GENERATE,
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
        ).order_by("pk")
    )
    in_scope = prompts.count()
    return Comparison(
        version_a=version_a,
        version_b=version_b,
        prompt_set=prompt_set,
        rows=rows,
        summary=head_to_head(total, per_prompt=list(per_prompt.values())),
        prompts=in_scope,
        missing_a=in_scope - len(outputs_a),
        missing_b=in_scope - len(outputs_b),
        pending_jobs=pending,
    )


def shown_rows(rows: list[PromptRow], show: str) -> list[PromptRow]:
    """The rows a filter shows: all in prompt order, most different first, or judges split."""
    if show == "different":
        complete = [row for row in rows if row.similarity is not None]
        return sorted(complete, key=lambda row: (row.similarity, row.prompt_id))
    if show == "split":
        return [row for row in rows if row.record.judges_split]
    return rows


def prompts_in_scope(
    project_id: int, prompt_set_id: int | None
) -> tuple[PromptSet | None, QuerySet[Prompt]]:
    """A prompt set's prompts, or every prompt of the project when no set is named."""
    if prompt_set_id is None:
        return None, Prompt.objects.filter(project_id=project_id)
    prompt_set = PromptSet.objects.filter(project_id=project_id, pk=prompt_set_id).first()
    if prompt_set is None:
        raise ServiceError("The prompt set is not in this project.", code="not_found")
    return prompt_set, prompt_set.prompts.all()


def versions_to_compare(
    project_id: int, version_a_id: int, version_b_id: int
) -> tuple[ModelVersion, ModelVersion]:
    if version_a_id == version_b_id:
        raise ServiceError("Pick two different versions to compare.")
    versions = {
        v.pk: v
        for v in ModelVersion.objects.filter(
            project_id=project_id, pk__in=[version_a_id, version_b_id]
        )
    }
    if len(versions) != 2:
        raise ServiceError("Both versions must belong to this project.", code="not_found")
    return versions[version_a_id], versions[version_b_id]


# ---- Writes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlindTasks:
    created: list[int]
    already_there: int
    missing_outputs: int


@transaction.atomic
def create_blind_tasks(
    *,
    project_id: int,
    version_a_id: int,
    version_b_id: int,
    prompt_set_id: int | None,
    judgments_wanted: int | None = None,
    seed: int | None = None,
) -> BlindTasks:
    """A pairwise task per prompt over the two versions' newest outputs, in random order and with
    no version names shown, so annotators judge blind. Pairs that already have a task are skipped,
    so pressing the button twice creates nothing new."""
    project = Project.objects.select_for_update().get(pk=project_id)
    if not project.pairwise_enabled:
        raise ServiceError(
            f"Project {project.name!r} does not enable pairwise judgments; enable them to compare blind."
        )
    version_a, version_b = versions_to_compare(project_id, version_a_id, version_b_id)
    _, prompts = prompts_in_scope(project_id, prompt_set_id)
    prompt_ids = list(prompts.order_by("pk").values_list("pk", flat=True))
    outputs_a = newest_outputs(version_a.pk, prompts)
    outputs_b = newest_outputs(version_b.pk, prompts)
    pairs = {
        prompt_id: (outputs_a[prompt_id], outputs_b[prompt_id])
        for prompt_id in prompt_ids
        if prompt_id in outputs_a and prompt_id in outputs_b
    }
    existing = feedback_selectors.task_groups(
        JudgmentMode.PAIRWISE, [cid for pair in pairs.values() for cid in pair]
    )
    rng = random.Random(seed)
    created, already_there = [], 0
    for prompt_id, pair in pairs.items():
        if frozenset(pair) in existing:
            already_there += 1
            continue
        order = list(pair) if rng.random() < 0.5 else [pair[1], pair[0]]
        task = feedback_services.create_task(
            prompt_id=prompt_id,
            completion_ids=order,
            mode=JudgmentMode.PAIRWISE,
            judgments_wanted=judgments_wanted,
        )
        created.append(task.pk)
    return BlindTasks(created, already_there, len(prompt_ids) - len(pairs))


def can_generate(version: ModelVersion) -> bool:
    """A version samples new outputs only from weights: ready, with a base model, not a reward model."""
    return (
        bool(version.base_model)
        and version.status == ModelStatus.READY
        and version.method != ModelMethod.REWARD_MODEL
    )


def queue_missing_outputs(
    *,
    project_id: int,
    version_id: int,
    prompt_set_id: int | None,
    created_by_id: int | None = None,
) -> TrainingJob:
    """Queue one generate job for the prompts of the set the version has not answered yet."""
    version = ModelVersion.objects.filter(project_id=project_id, pk=version_id).first()
    if version is None:
        raise ServiceError("The version is not in this project.", code="not_found")
    if not can_generate(version):
        raise ServiceError(
            f"{version.name!r} has no weights to sample from (imported outputs, a reward model, or "
            "not ready); import its outputs for these prompts instead."
        )
    prompt_set, prompts = prompts_in_scope(project_id, prompt_set_id)
    prompt_ids = list(prompts.order_by("pk").values_list("pk", flat=True))
    answered = newest_outputs(version.pk, prompts)
    missing = [p for p in prompt_ids if p not in answered]
    if not missing:
        scope = repr(prompt_set.name) if prompt_set else "the project"
        raise ServiceError(f"{version.name!r} has answered every prompt of {scope}.")
    running = TrainingJob.objects.filter(
        model_version=version,
        kind=JobKind.GENERATE,
        alignment_round__isnull=True,
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
    ).first()
    if running is not None:
        raise ServiceError(
            f"Outputs of {version.name!r} are already being generated (job #{running.pk}); "
            "reload this page when it has finished.",
            code="conflict",
        )
    return jobs.queue_job(
        kind=JobKind.GENERATE,
        model_version_id=version.pk,
        created_by_id=created_by_id,
        config={"prompt_ids": missing, "samples_per_prompt": 1},
    )
