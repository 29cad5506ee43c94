"""Shared plumbing for the benchmarks: Django set up against the benchmark database, a real
server process as production runs it (Granian), and an API token. Run the benchmarks through tests/services.sh, which
provides a throwaway PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import os
import socket
import statistics
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


def machine_pace() -> str:
    """A fixed single-core Python workload, timed now (median of five). This machine is a shared
    VM whose speed drifts: the same benchmark measured up to twice as slow an hour apart, and as
    much within one run. Benchmarks print this at their start and end; figures from different runs
    compare only beside these lines; lower is faster."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(2_000_000))
        times.append(time.perf_counter() - started)
    return (
        f"machine pace: {statistics.median(times) * 1000:.0f} ms for a fixed Python loop "
        f"(median of 5, best {min(times) * 1000:.0f}; lower is faster); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


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


class Sampling:
    """Calls `sample()` on entry, every quarter second while the block runs, and on exit, so
    that a peak, or a process that exits meanwhile, is not missed. Not more often: sampling
    runs on the cores it measures (every 50 ms, it took 0.6-0.9 s of CPU in a 3 s import)."""

    interval = 0.25

    def sample(self) -> None:
        raise NotImplementedError

    def watch(self) -> None:
        while self.running:
            self.sample()
            time.sleep(self.interval)

    def __enter__(self):
        self.sample()
        self.running = True
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.sample()


class PeakMemory(Sampling):
    """A process's resident set size at the start and at its peak while the block runs."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.start = self.process.memory_info().rss
        self.peak = self.start

    def sample(self) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)


class CpuSeconds(Sampling):
    """User + system CPU seconds that processes spend while the block runs; `processes` is a
    callable listing them, asked again at each sample (database backends come and go)."""

    def __init__(self, processes):
        self.processes = processes
        self.seen: dict[int, tuple[float, float]] = {}  # pid -> (first, latest CPU seconds)

    def sample(self) -> None:
        import psutil

        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total = times.user + times.system
            self.seen[process.pid] = (self.seen.get(process.pid, (total,))[0], total)

    @property
    def seconds(self) -> float:
        return sum(latest - first for first, latest in self.seen.values())


# Titles of PostgreSQL's own processes; every other child of the postmaster serves a client.
BACKGROUND_WORKERS = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "archiver",
    "stats collector",
)


def postgres_processes(background: bool = False):
    """A callable listing the benchmark database's client backends (the server's queries), or
    with `background` PostgreSQL's own processes (autovacuum, WAL, checkpoints)."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        postmaster = psutil.Process(cursor.fetchone()[0]).parent()

    kinds: dict[int, bool] = {}  # pid -> whether it is a background process (titles stay)

    def listed() -> list:
        chosen = []
        for process in postmaster.children():
            if process.pid not in kinds:
                try:
                    title = " ".join(process.cmdline())
                except psutil.Error:  # it exited between listing and reading
                    continue
                kinds[process.pid] = any(worker in title for worker in BACKGROUND_WORKERS)
            if kinds[process.pid] == background:
                chosen.append(process)
        return chosen

    return listed


def vacuum_database() -> None:
    """Do now the cleanup autovacuum would do after the previous step's writes, so that it does
    not share the CPUs with the next step's figures."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


class ServingCpu:
    """CPU seconds of the server's worker, of PostgreSQL's client backends and of its background
    processes while the block runs: on a shared machine wall-clock is noisy, CPU much less so."""

    def __init__(self, worker_pid: int):
        import psutil

        worker = psutil.Process(worker_pid)
        self.server = CpuSeconds(lambda: [worker])
        self.postgres = CpuSeconds(postgres_processes())
        self.background = CpuSeconds(postgres_processes(background=True))
        self.parts = (self.server, self.postgres, self.background)

    def __enter__(self) -> ServingCpu:
        for part in self.parts:
            part.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for part in self.parts:
            part.__exit__(*exc)

    def __str__(self) -> str:
        return (
            f"CPU: server {self.server.seconds:.2f} s, PostgreSQL {self.postgres.seconds:.2f} s "
            f"(+ {self.background.seconds:.2f} s background)"
        )


def api_key(username: str, project_id: int, role: str = "admin") -> str:
    from django.contrib.auth import get_user_model

    from feedback import services
    from feedback.services.tokens import issue_token

    user, _ = get_user_model().objects.get_or_create(username=username)
    services.add_member(project_id=project_id, user_id=user.pk, role=role)
    return issue_token(user_id=user.pk, name="benchmark").key


def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"
