"""Serve the demo: a Celery worker process plus the development web server, stopped together."""

import os
import signal
import socket
import subprocess
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.celery import worker_command
from feedback.demo import DEMO_USERS


def port_is_free(port: int) -> bool:
    """Whether the web server can listen on the port (it reuses addresses too, so a port left
    in TIME_WAIT by a stopped server counts as free)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Command(BaseCommand):
    help = "Start a Celery worker (all queues) and the web server for the local demo."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port: int, **options):
        # runserver ends the process outright (os._exit) when its port is taken, which would
        # leave the worker started below running on its own: check first.
        if not port_is_free(port):
            raise CommandError(
                f"Port {port} is in use (is the demo running already?). Stop what holds it, "
                "or pick another port: make demo DEMO_PORT=8080."
            )
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
