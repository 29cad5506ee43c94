"""Serve the demo: a Celery worker process plus the development web server, stopped together."""

import os
import signal
import subprocess
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.celery import worker_command
from feedback.demo import DEMO_USERS


class Command(BaseCommand):
    help = "Start a Celery worker (all queues) and the web server for the local demo."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port: int, **options):
        worker = subprocess.Popen(
            worker_command("--max-tasks-per-child", "1", "-B"),
            env=os.environ.copy(),
        )
        url = f"http://127.0.0.1:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nArbiter demo: {url}  (admin: {url}admin/)"))
        for username, password, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role:<10} {username} / {password}")
        self.stdout.write("Press Ctrl-C to stop the web server and the worker.\n")
        # A plain `kill` ends Python without unwinding: make it unwind, so the worker stops too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
