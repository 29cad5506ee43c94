"""The Celery app. Tasks live in each app's tasks.py; GPU work is routed to the "gpu" queue."""

import logging
import os
import sys

from celery import Celery
from celery.signals import after_setup_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat sends these every few seconds: three INFO lines each time ("sending", "received",
# "succeeded") would bury the log of the jobs people watch it for. Their failures still show.
ROUTINE_TASKS = ("training.tasks.watch_training",)


class RoutineTaskFilter(logging.Filter):
    """Drops the INFO lines that only say a routine task was sent, received or finished."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not any(task in message for task in ROUTINE_TASKS)


@after_setup_logger.connect
def quiet_routine_tasks(logger: logging.Logger, **_) -> None:
    # On the handlers: a logger's own filters never see what its children propagate to it.
    for handler in logger.handlers:
        handler.addFilter(RoutineTaskFilter())


def worker_command(*options: str) -> list[str]:
    """The command line of one worker process serving both queues, as the demo and the tests run it
    (production runs a worker per queue: docker/compose.yaml)."""
    return [
        *(sys.executable, "-m", "celery", "-A", "config", "worker"),
        *("-Q", "default,gpu", "-c", "1", "--loglevel", "INFO"),
        *options,
    ]
