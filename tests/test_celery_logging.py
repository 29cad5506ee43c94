"""The worker's log leaves out the routine lines of the periodic watch task, and nothing else."""

import logging

from config.celery import quiet_routine_tasks


def record(level: int, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord("celery.app.trace", level, __file__, 1, message, args, None)


def test_routine_task_lines_are_dropped_and_the_rest_kept():
    handler = logging.Handler()
    logger = logging.getLogger("tests.celery-logging")
    logger.addHandler(handler)
    try:
        quiet_routine_tasks(logger=logger)
    finally:
        logger.removeHandler(handler)
    # As Celery words them: beat sending the task, the worker receiving it, the task succeeding.
    sent = record(
        logging.INFO,
        "Scheduler: Sending due task %s (%s)",
        "watch-training",
        "training.tasks.watch_training",
    )
    received = record(
        logging.INFO,
        "Task %(name)s[%(id)s] received",
        {"name": "training.tasks.watch_training", "id": "1"},
    )
    succeeded = record(
        logging.INFO,
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
        {"name": "training.tasks.watch_training", "id": "1", "runtime": 0.01, "return_value": None},
    )
    failed = record(
        logging.ERROR,
        "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
        {"name": "training.tasks.watch_training", "id": "1", "exc": "boom"},
    )
    job = record(
        logging.INFO,
        "Task %(name)s[%(id)s] received",
        {"name": "training.tasks.run_training_job", "id": "2"},
    )
    assert not any(handler.filter(r) for r in (sent, received, succeeded))
    assert handler.filter(failed) and handler.filter(job)
