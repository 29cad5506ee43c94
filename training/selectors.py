"""Reads for the training pages: projects a user may review, rounds with their live progress, the
model registry's lineage tree, and what a launch form may offer."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Count, Q, QuerySet

from feedback import selectors as feedback_selectors
from feedback.models import Completion, ModelVersion, Project, PromptSet, Role
from feedback.models.prompts import ModelMethod, ModelStatus, PromptSplit
from training import charts, rounds
from training.jobs import job_output_dir
from training.models import AlignmentRound, JobStatus, RoundMethod, RoundState, TrainingJob

FINISHED_STATES = (RoundState.DONE, RoundState.FAILED, RoundState.CANCELLED)
VIEWER_ROLES = (Role.REVIEWER, Role.ADMIN)


def can_view(user, project_id: int) -> bool:
    """Reviewers and admins of the project (staff count as admins) see its training pages."""
    return feedback_selectors.has_role(user, project_id, *VIEWER_ROLES)


def can_manage(user, project_id: int) -> bool:
    """Only admins launch, cancel, resume and move rounds on, and create comparison tasks."""
    return feedback_selectors.has_role(user, project_id, Role.ADMIN)


def reviewable_projects(user) -> QuerySet[Project]:
    """Projects whose training pages the user may see."""
    projects = feedback_selectors.projects_for(user)
    if not user.is_staff:
        projects = projects.filter(
            memberships__user=user, memberships__role__in=VIEWER_ROLES
        ).distinct()
    return projects.order_by("name")


def sees_training(user) -> bool:
    """Whether the Training pages have anything for the user: staff, or a reviewer or admin of
    some project. Annotators are not shown a link to an empty page."""
    return user.is_authenticated and (user.is_staff or reviewable_projects(user).exists())


@dataclass(frozen=True)
class ProjectOverview:
    project: Project
    can_manage: bool
    version_count: int
    round_count: int
    latest_rounds: list[AlignmentRound]


def project_overviews(user) -> list[ProjectOverview]:
    roles = feedback_selectors.memberships_of(user)
    projects = reviewable_projects(user).annotate(
        version_count=Count("model_versions", distinct=True),
        round_count=Count("rounds", distinct=True),
    )
    overviews = []
    for project in projects:
        latest = list(
            AlignmentRound.objects.filter(project=project)
            .select_related("policy")
            .order_by("-number")[:3]
        )
        overviews.append(
            ProjectOverview(
                project=project,
                can_manage=user.is_staff or roles.get(project.pk) == Role.ADMIN,
                version_count=project.version_count,
                round_count=project.round_count,
                latest_rounds=latest,
            )
        )
    return overviews


def rounds_of_project(project_id: int) -> QuerySet[AlignmentRound]:
    return (
        AlignmentRound.objects.filter(project_id=project_id)
        .select_related("policy", "prompt_set", "result_version")
        .annotate(
            judgments_collected=Count("tasks__judgments", distinct=True),
        )
        .order_by("-number")
    )


def round_with_relations(round_id: int) -> AlignmentRound | None:
    return (
        AlignmentRound.objects.select_related(
            "project",
            "policy",
            "prompt_set",
            "snapshot",
            "reward_model",
            "result_version",
            "created_by",
        )
        .filter(pk=round_id)
        .first()
    )


# ---- Launch form choices ----------------------------------------------------------------------


def trainable_versions(project_id: int) -> QuerySet[ModelVersion]:
    """Versions a round can start from: ready, with base weights to train."""
    return (
        ModelVersion.objects.filter(project_id=project_id, status=ModelStatus.READY)
        .exclude(base_model="")
        .exclude(method=ModelMethod.REWARD_MODEL)
        .order_by("-created_at", "-id")
    )


def prompt_sets_with_counts(project_id: int) -> QuerySet[PromptSet]:
    """The project's prompt sets, each with `train_count` and `prompt_count`."""
    return (
        PromptSet.objects.filter(project_id=project_id)
        .annotate(
            prompt_count=Count("prompts", distinct=True),
            train_count=Count("prompts", filter=Q(prompts__split=PromptSplit.TRAIN), distinct=True),
        )
        .order_by("name")
    )


# ---- Round progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    state: str
    label: str
    status: str  # "done", "current", "failed", "stopped" or "todo"


def round_steps(round_: AlignmentRound) -> list[Step]:
    """The round's path through the state machine, each step marked done, current or to do."""
    path = [RoundState.GENERATING, RoundState.ANNOTATING]
    if round_.method == RoundMethod.PPO:
        path.append(RoundState.TRAINING_REWARD)
    path += [RoundState.TRAINING_POLICY, RoundState.EVALUATING, RoundState.DONE]
    if round_.state == RoundState.DONE:
        current, stop_status = len(path) - 1, "done"
    elif round_.state in (RoundState.FAILED, RoundState.CANCELLED):
        stopped_in = round_.failed_state or RoundState.GENERATING
        current = path.index(stopped_in) if stopped_in in path else 0
        stop_status = "failed" if round_.state == RoundState.FAILED else "stopped"
    else:
        current = path.index(round_.state) if round_.state in path else 0
        stop_status = "current"
    steps = []
    for index, state in enumerate(path):
        status = "done" if index < current else stop_status if index == current else "todo"
        steps.append(Step(state, RoundState(state).label, status))
    return steps


@dataclass(frozen=True)
class JobView:
    job: TrainingJob
    charts: list[charts.Chart]
    artifact_rows: list[tuple[str, str]]
    is_active: bool


@dataclass(frozen=True)
class RoundProgress:
    round: AlignmentRound
    steps: list[Step]
    judgments_collected: int
    judgments_wanted: int
    jobs: list[JobView]
    current_job: JobView | None
    evaluation_rows: list[tuple[str, str]]
    is_finished: bool
    fingerprint: str
    task_count: int = 0

    @property
    def quota_percent(self) -> float:
        if not self.judgments_wanted:
            return 0.0
        return min(100.0, 100.0 * self.judgments_collected / self.judgments_wanted)


def round_progress(round_: AlignmentRound) -> RoundProgress:
    """Everything the live part of a round page shows, and a fingerprint that changes when it does."""
    jobs = list(round_.jobs.order_by("created_at", "pk"))
    collected = rounds.judgments_collected(round_)
    views = [
        JobView(
            job=job,
            charts=charts.training_charts(job.metrics_history, chart_id=f"job-{job.pk}"),
            artifact_rows=value_rows(job.artifacts),
            is_active=job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        )
        for job in jobs
    ]
    is_finished = round_.state in FINISHED_STATES
    return RoundProgress(
        round=round_,
        steps=round_steps(round_),
        judgments_collected=collected,
        judgments_wanted=round_.judgments_wanted,
        jobs=views,
        current_job=views[-1] if views else None,
        evaluation_rows=value_rows(round_.evaluation),
        is_finished=is_finished,
        fingerprint=fingerprint_of(round_, jobs, collected),
        task_count=round_.tasks.count(),
    )


def live_fingerprint(round_: AlignmentRound) -> str:
    """The fingerprint alone, without drawing charts: what a poll checks before rendering."""
    jobs = list(round_.jobs.order_by("created_at", "pk"))
    return fingerprint_of(round_, jobs, rounds.judgments_collected(round_))


def fingerprint_of(round_: AlignmentRound, jobs: list[TrainingJob], collected: int) -> str:
    """Changes whenever anything the live panel shows changes, so an unchanged poll can answer
    204 and leave the page (and the keyboard focus) alone."""
    parts = [round_.state, round_.failed_state, round_.error, str(collected)]
    for job in jobs:
        parts += [
            str(job.pk),
            job.status,
            f"{job.progress:.2f}",
            str(len(job.metrics_history)),
            job.log_tail[-200:],  # the tail is capped, so its length stops changing
            job.error,
            str(bool(job.artifacts)),
        ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def format_value(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "—"}[value]
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def value_rows(values: dict | None, prefix: str = "") -> list[tuple[str, str]]:
    """Metrics, evaluations and artifacts as (label, text) rows, keys in a stable order. A nested
    dict (a version's "evaluation") gives a row per entry, its key before theirs: one JSON blob
    in a tile hid the figure people look for."""
    rows = []
    for key, value in sorted((values or {}).items()):
        label = prefix + str(key).replace("_", " ")
        if isinstance(value, dict) and value:
            rows += value_rows(value, prefix=f"{label}: ")
        else:
            rows.append((label, format_value(value)))
    return rows


# ---- Model registry ---------------------------------------------------------------------------


@dataclass
class VersionNode:
    version: ModelVersion
    children: list[VersionNode]
    metric_rows: list[tuple[str, str]]
    completion_count: int
    has_adapter: bool
    hyperparameters_json: str

    @property
    def compares_with_parent(self) -> bool:
        """A policy can be read side by side with the policy it was trained from; a reward
        model scores rather than answers, so it cannot."""
        return bool(self.version.parent_id) and self.version.method != ModelMethod.REWARD_MODEL


def version_tree(project_id: int) -> list[VersionNode]:
    """The project's model versions as a lineage forest: roots (no parent) with nested children."""
    versions = list(
        ModelVersion.objects.filter(project_id=project_id)
        .select_related("data_snapshot", "alignment_round", "parent", "import_batch")
        .order_by("created_at", "pk")
    )
    # Counted apart, by version: grouping the versions' wide rows by a million outputs took
    # seconds.
    outputs = dict(
        Completion.objects.filter(model_version__project_id=project_id)
        .values_list("model_version_id")
        .annotate(n=Count("pk"))
        .values_list("model_version_id", "n")
    )
    nodes = {
        v.pk: VersionNode(
            version=v,
            children=[],
            metric_rows=value_rows(v.metrics),
            completion_count=outputs.get(v.pk, 0),
            has_adapter=adapter_directory(v) is not None,
            hyperparameters_json=pretty_json(v.hyperparameters) if v.hyperparameters else "",
        )
        for v in versions
    }
    roots = []
    for version in versions:
        parent = nodes.get(version.parent_id) if version.parent_id else None
        (parent.children if parent else roots).append(nodes[version.pk])
    return roots


def adapter_directory(version: ModelVersion) -> Path | None:
    """The version's adapter folder, only when a training job of its project wrote it there: a
    path typed into an import must not let a reviewer download other folders of the server, or
    another project's artifacts."""
    if not version.adapter_path:
        return None
    job = TrainingJob.objects.filter(result_version=version, project_id=version.project_id).first()
    if job is None:
        return None
    try:
        folder = Path(version.adapter_path).resolve()
        written_by_job = job_output_dir(job).resolve()
    except (OSError, RuntimeError):
        return None
    if not folder.is_dir() or not folder.is_relative_to(written_by_job):
        return None
    return folder


def adapter_files(folder: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file) for every regular file under `folder`, skipping links that leave it."""
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        files.append((path.relative_to(folder).as_posix(), path))
    return files


class _ZipSink(io.RawIOBase):
    """Collects what ZipFile writes so a generator can hand it on; not seekable, so ZipFile writes
    data descriptors after each entry and never needs the whole archive in memory."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def adapter_zip_chunks(files: list[tuple[str, Path]], block_size: int = 1 << 20) -> Iterator[bytes]:
    """A zip archive of `files`, produced piece by piece for a streaming response."""
    sink = _ZipSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, path in files:
            with open(path, "rb") as source, archive.open(name, "w", force_zip64=True) as entry:
                while block := source.read(block_size):
                    entry.write(block)
                    if sink.chunks:
                        yield sink.drain()
    yield sink.drain()


def versions_of_project(project_id: int) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project_id=project_id).order_by("created_at", "pk")


def version_in_project(project_id: int, version_id: int | None) -> ModelVersion | None:
    if version_id is None:
        return None
    return ModelVersion.objects.filter(project_id=project_id, pk=version_id).first()
