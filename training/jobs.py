"""Training job lifecycle: queue, report progress, cancel, finish, and notice dead workers.

Every change to a TrainingJob row goes through here. The Celery task only loads the id and calls
`training.runners.run_job`, which reports back through these functions.
"""

import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from feedback.errors import ServiceError
from training.models import JobKind, JobStatus, TrainingJob

logger = logging.getLogger(__name__)

LOG_TAIL_CHARS = 8_000
# A running job whose heartbeat is older than this is taken for dead (its worker was killed).
HEARTBEAT_TIMEOUT = timedelta(minutes=10)


def job_output_dir(job: TrainingJob):
    """One directory per job: a re-run of the same job resumes from its checkpoints."""
    return settings.ARTIFACT_ROOT / "jobs" / f"{job.kind}-{job.pk}"


@transaction.atomic
def queue_job(
    *,
    kind: str,
    model_version_id: int,
    config: dict | None = None,
    snapshot_id: int | None = None,
    alignment_round_id: int | None = None,
    created_by_id: int | None = None,
) -> TrainingJob:
    """Create a job and send it to the GPU queue once the transaction commits."""
    from feedback.models import ModelVersion

    if kind not in JobKind.values:
        raise ServiceError(f"Job kind must be one of {', '.join(JobKind.values)}.")
    version = ModelVersion.objects.filter(pk=model_version_id).first()
    if version is None:
        raise ServiceError(f"No model version with id {model_version_id}.", code="not_found")
    if kind != JobKind.GENERATE and kind != JobKind.EVALUATE and not version.base_model:
        raise ServiceError(f"Model version {version.name!r} names no base model to train from.")
    job = TrainingJob.objects.create(
        project_id=version.project_id,
        kind=kind,
        model_version=version,
        config=config or {},
        snapshot_id=snapshot_id,
        alignment_round_id=alignment_round_id,
        created_by_id=created_by_id,
    )
    dispatch(job)
    return job


def dispatch(job: TrainingJob) -> None:
    from training.tasks import run_training_job

    transaction.on_commit(lambda: run_training_job.delay(job.pk))


def start(job_id: int) -> TrainingJob | None:
    """Mark a queued job running; None when it was cancelled or finished meanwhile, or runs
    already: a second delivery of its message (a resume while the broker still held the first,
    or the broker's redelivery of a long run) must not run it twice. The job's `attempts` after
    this names the run; finish_* ignore another's report."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        now = timezone.now()
        # A run whose heart stopped (its worker was killed) is taken over: the broker hands a
        # dead worker's job on, and it resumes from its checkpoints.
        abandoned = job.status == JobStatus.RUNNING and (
            job.heartbeat_at is None or job.heartbeat_at < now - HEARTBEAT_TIMEOUT
        )
        if job.status != JobStatus.QUEUED and not abandoned:
            if job.status == JobStatus.RUNNING:
                logger.warning("Training job %s is running already; not starting it twice.", job_id)
            return None
        if job.cancel_requested:
            finish_cancelled(job)
            return None
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.attempts = F("attempts") + 1
        job.error = ""
        job.save(update_fields=["status", "started_at", "heartbeat_at", "attempts", "error"])
    job.refresh_from_db()
    return job


def record_metrics(job_id: int, *reports: dict, progress: float | None = None) -> None:
    """Append metrics reports and beat the heart. Progress is a percentage."""
    with transaction.atomic():
        job = (
            TrainingJob.objects.select_for_update()
            .only("metrics_history", "progress", "heartbeat_at")
            .get(pk=job_id)
        )
        job.metrics_history = [*job.metrics_history, *reports]
        fields = ["metrics_history", "heartbeat_at"]
        if progress is not None:
            job.progress = max(0.0, min(100.0, progress))
            fields.append("progress")
        job.heartbeat_at = timezone.now()
        job.save(update_fields=fields)


def append_log(job_id: int, line: str) -> None:
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().only("log_tail").get(pk=job_id)
        job.log_tail = (job.log_tail + line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["log_tail", "heartbeat_at"])


def is_cancel_requested(job_id: int) -> bool:
    return TrainingJob.objects.filter(pk=job_id, cancel_requested=True).exists()


def beat(job_id: int, attempt: int) -> None:
    """The run is alive (sent while a long step, sampling say, reports nothing)."""
    TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt).update(
        heartbeat_at=timezone.now()
    )


def running_attempt(job_id: int, attempt: int | None) -> TrainingJob | None:
    """The job, locked, if `attempt` (None: any) is its current run; else None, logged: a run
    the dead-worker check gave up on, or one a resume has replaced, reports too late."""
    job = TrainingJob.objects.select_for_update().get(pk=job_id)
    if attempt is not None and (job.status != JobStatus.RUNNING or job.attempts != attempt):
        logger.warning(
            "Training job %s: run %s ended after the job moved on (%s, run %s); its outcome is "
            "not recorded.",
            job_id,
            attempt,
            job.status,
            job.attempts,
        )
        return None
    return job


def finish_succeeded(
    job_id: int,
    *,
    artifacts: dict,
    result_version_id: int | None = None,
    attempt: int | None = None,
) -> TrainingJob | None:
    with transaction.atomic():
        job = running_attempt(job_id, attempt)
        if job is None:
            return None
        job.status = JobStatus.SUCCEEDED
        job.progress = 100.0
        job.artifacts = artifacts
        job.result_version_id = result_version_id
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "progress", "artifacts", "result_version", "finished_at"])
    return job


def finish_failed(
    job_id: int, error: BaseException | str, *, attempt: int | None = None
) -> TrainingJob | None:
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    detail = "" if isinstance(error, str) else "".join(traceback.format_exception(error))
    logger.error("Training job %s failed: %s", job_id, message)
    with transaction.atomic():
        job = running_attempt(job_id, attempt)
        if job is None:
            return None
        job.status = JobStatus.FAILED
        job.error = message[:2000]
        job.log_tail = (job.log_tail + detail)[-LOG_TAIL_CHARS:]
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "log_tail", "finished_at"])
    return job


def finish_cancelled(job: TrainingJob) -> None:
    job.status = JobStatus.CANCELLED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])


def finish_run_cancelled(job_id: int, attempt: int) -> TrainingJob | None:
    """A run that stopped at a cancel request."""
    with transaction.atomic():
        job = running_attempt(job_id, attempt)
        if job is not None:
            finish_cancelled(job)
    return job


@transaction.atomic
def request_cancel(job_id: int) -> TrainingJob:
    """Ask a job to stop: a queued job is cancelled now, a running one at its next step."""
    job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise ServiceError(f"No training job with id {job_id}.", code="not_found")
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        raise ServiceError(f"Job #{job_id} has already ended ({job.status}).", code="conflict")
    job.cancel_requested = True
    job.save(update_fields=["cancel_requested"])
    if job.status == JobStatus.QUEUED:
        finish_cancelled(job)
    return job


@transaction.atomic
def resume(job_id: int) -> TrainingJob:
    """Queue a failed or cancelled job again; it resumes from its newest checkpoint."""
    job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise ServiceError(f"No training job with id {job_id}.", code="not_found")
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ServiceError(f"Only a failed or cancelled job can resume; #{job_id} is {job.status}.")
    job.status = JobStatus.QUEUED
    job.cancel_requested = False
    job.error = ""
    job.finished_at = None
    job.save(update_fields=["status", "cancel_requested", "error", "finished_at"])
    dispatch(job)
    return job


def fail_stale_jobs(now=None) -> list[int]:
    """Mark running jobs whose worker stopped beating as failed; they can resume from checkpoints."""
    cutoff = (now or timezone.now()) - HEARTBEAT_TIMEOUT
    stale = list(
        TrainingJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", "attempts"
        )
    )
    failed = []
    for job_id, attempt in stale:
        job = finish_failed(
            job_id,
            "The worker stopped responding (no heartbeat for "
            f"{int(HEARTBEAT_TIMEOUT.total_seconds() // 60)} min); resume to continue from the last checkpoint.",
            attempt=attempt,  # unless it ended meanwhile
        )
        if job is None:
            continue
        from training import rounds

        rounds.on_job_finished(job)
        failed.append(job_id)
    return failed
