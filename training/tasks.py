"""Celery entry points for training. GPU work runs on the "gpu" queue (see CELERY_TASK_ROUTES)."""

from celery import shared_task

from training import jobs, rounds, runners

# Jobs resume from checkpoints in their own output directory, so a redelivered task is safe.
TRAINING_TIME_LIMIT_S = 24 * 3600


@shared_task(
    acks_late=True, time_limit=TRAINING_TIME_LIMIT_S, soft_time_limit=TRAINING_TIME_LIMIT_S - 60
)
def run_training_job(job_id: int) -> None:
    runners.run_job(job_id)


@shared_task(time_limit=120)
def watch_training() -> None:
    """Periodic: fail jobs whose worker died, and move annotating rounds on when their quota is met."""
    jobs.fail_stale_jobs()
    rounds.advance_annotating_rounds()
