"""Shared plumbing for the benchmarks: Django set up against the benchmark database, a real
server process as production runs it (Granian), and an API token. Run the benchmarks through tests/services.sh, which
provides a throwaway PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV = {
    "SECRET_KEY": "benchmark-only",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_COOKIES": "0",
    "SECURE_HSTS_SECONDS": "0",
    "ARBITER_API_RATE": "1000000/hour",
    "ARBITER_IMPORT_RATE": "100000/hour",
    "ARBITER_EXPORT_RATE": "100000/hour",
    "LOG_LEVEL": "WARNING",
}


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Run through tests/services.sh so DATABASE_URL points at PostgreSQL.")
    os.environ.update(SERVER_ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def server_command(port: int, workers: int = 1, threads: int = 1) -> list[str]:
    """Granian serving config.wsgi, as docker/ runs it: `workers` processes, each running the
    app in `threads` threads."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        "--log-level",
        "warning",
        "config.wsgi:application",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The server with one worker process running one thread (one process to watch)."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        env = {**os.environ, **SERVER_ENV, "DJANGO_SETTINGS_MODULE": "config.settings"}
        self.process = subprocess.Popen(
            server_command(self.port),
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def worker_pid(self) -> int:
        import psutil

        children = psutil.Process(self.process.pid).children()
        return children[0].pid if children else self.process.pid


class PeakMemory:
    """Samples a process's resident set size every 50 ms while the block runs."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.start = self.process.memory_info().rss
        self.peak = self.start
        self.running = False

    def sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()


def api_key(username: str, project_id: int, role: str = "admin") -> str:
    from django.contrib.auth import get_user_model

    from feedback import services
    from feedback.services.tokens import issue_token

    user, _ = get_user_model().objects.get_or_create(username=username)
    services.add_member(project_id=project_id, user_id=user.pk, role=role)
    return issue_token(user_id=user.pk, name="benchmark").key


def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"
