"""The Celery app. Tasks live in each app's tasks.py; GPU work is routed to the "gpu" queue."""

import os
import sys

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def worker_command(*options: str) -> list[str]:
    """The command line of one worker process serving both queues, as the demo and the tests run it
    (production runs a worker per queue: docker/compose.yaml)."""
    return [
        *(sys.executable, "-m", "celery", "-A", "config", "worker"),
        *("-Q", "default,gpu", "-c", "1", "--loglevel", "INFO"),
        *options,
    ]
