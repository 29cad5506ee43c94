"""Queue throughput on PostgreSQL: next task plus submit, with 100,000 tasks and 200 annotators.

Prints
1. server time of the queue services, timed in-process: p50/p99 of next_task_for, of
   submit_judgment, and of the pair;
2. judgments per second through a real server (Granian, as production runs it) with 8 and 16
   concurrent clients (each an annotator with a session cookie and a CSRF token, calling the JSON
   submit endpoint, which stores the judgment and returns the next lease), with the server time every response reports in its
   Server-Timing header and the latency the clients see; a share of submissions is sent twice,
   as a retrying client would;
3. a consistency check: every judgment a client was told about is stored exactly once, retries
   returned the stored judgment, and no task holds more judgments or slots than it should.

It also prints the CPU the server processes and their PostgreSQL backends spent per judgment
(from /proc), which says more than judgments/s on a machine that other work shares, and ends
with the targets, met or not.

Run it against a throwaway PostgreSQL (the database is filled from scratch):
    tests/services.sh .venv/bin/python benchmarks/queue_throughput.py
Options: --tasks, --annotators, --seconds (per client count), --workers and --threads (the server's
processes, and threads running the app in each), --label-studio-rate and --label-studio-p99 (what
benchmarks/label_studio.py measured just before or after: this machine's speed drifts twofold
within the hour, and the targets are relative to Label Studio's).
"""

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from serving import machine_pace, server_command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "SECRET_KEY": "benchmark-only-not-a-secret",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_COOKIES": "0",
    "LOG_LEVEL": "WARNING",
    "DATABASE_CONN_MAX_AGE": "600",
}
for name, value in SERVER_ENV.items():
    os.environ.setdefault(name, value)
if os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
    # Sessions in Redis, as production runs (docker/compose.yaml).
    os.environ.setdefault("CACHE_URL", os.environ["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, F, Q  # noqa: E402

from feedback import services  # noqa: E402
from feedback.models import (  # noqa: E402
    AnnotationTask,
    Completion,
    Judgment,
    Membership,
    Prompt,
    TaskItem,
)

BATCH = 5_000
CHOICES = ("a", "b", "tie", "both_bad")
WARM_UP = 1_000  # lease-and-submit rounds before anything is measured
RETRY_SHARE = 0.02  # submissions a client sends twice, as after a lost response
ANSWER = (
    "Here is a careful answer with a short explanation, a list of steps and an example; it is "
    "about as long as a typical chat model reply to a simple question, so the payload sizes are "
    "realistic. "
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def describe(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.50):6.2f} ms   p99 {percentile(values, 0.99):6.2f} ms   "
        f"mean {statistics.fmean(values):6.2f} ms   (n={len(values)})"
    )


# --- Data -----------------------------------------------------------------------------------


def build_project(n_tasks: int, n_annotators: int):
    """A pairwise project with overlap 2: prompts, two completions each, tasks, annotators.

    Rows are bulk-inserted (the per-row services would take minutes at this size); the queue and
    judgment services under test are the real ones.
    """
    project = services.create_project(name=f"Benchmark {time.time():.0f}", overlap=2)
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"bench-{project.pk}-{i}", password="!")
        for i in range(n_annotators)
    )
    Membership.objects.bulk_create(Membership(project=project, user=user) for user in users)
    for start in range(0, n_tasks, BATCH):
        numbers = range(start, min(n_tasks, start + BATCH))
        prompts = Prompt.objects.bulk_create(
            Prompt(
                project=project,
                text=f"Question {i}: how would you explain topic {i} to a newcomer?",
                content_hash=hashlib.sha256(f"{project.pk}-{i}".encode()).hexdigest(),
            )
            for i in numbers
        )
        completions = Completion.objects.bulk_create(
            Completion(prompt=prompt, text=f"Answer {k} to {prompt.text} {ANSWER * 3}")
            for prompt in prompts
            for k in (0, 1)
        )
        tasks = AnnotationTask.objects.bulk_create(
            AnnotationTask(project=project, prompt=prompt, mode="pairwise", judgments_wanted=2)
            for prompt in prompts
        )
        TaskItem.objects.bulk_create(
            TaskItem(task=task, completion=completions[2 * index + k], position=k)
            for index, task in enumerate(tasks)
            for k in (0, 1)
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return project, users


# --- 1. In-process service time ---------------------------------------------------------------


def time_services(
    project, users, iterations: int
) -> tuple[list[float], list[float], dict[int, int]]:
    """Time `iterations` lease-and-submit rounds; returns both timings and judgment id -> task id."""
    next_ms, submit_ms, judgments = [], [], {}
    for index in range(iterations):
        user = users[index % len(users)]
        started = time.perf_counter()
        lease = services.next_task_for(annotator_id=user.pk, project_id=project.pk)
        leased = time.perf_counter()
        judgment = services.submit_judgment(
            annotator_id=user.pk,
            task_id=lease.task_id,
            data=services.JudgmentInput(
                kind="pairwise", choice=random.choice(CHOICES), idempotency_key=f"inproc-{lease.pk}"
            ),
        )
        done = time.perf_counter()
        next_ms.append((leased - started) * 1000)
        submit_ms.append((done - leased) * 1000)
        judgments[judgment.pk] = lease.task_id
    return next_ms, submit_ms, judgments


# --- 2. Through a real server -----------------------------------------------------------------


def session_for(user) -> str:
    """A signed-in session, as the login form would create it (without 200 password hashes)."""
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    command = server_command(port, workers, threads)
    server = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ))  # SERVER_ENV is in it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/login/")
            if probe.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the server did not start")


def server_timing(header: str) -> dict[str, float]:
    """{"view": 12.3, "cpu": 4.5} from "view;dur=12.3, cpu;dur=4.5"."""
    metrics = {}
    for entry in header.split(","):
        name, _, duration = entry.strip().partition(";dur=")
        if duration:
            metrics[name] = float(duration)
    return metrics


@dataclass
class ClientLog:
    confirmed: dict[int, int] = field(default_factory=dict)  # judgment id -> task id
    latency_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    retries: int = 0
    retry_mismatches: int = 0
    errors: list[str] = field(default_factory=list)


class KeepAliveConnection:
    """HTTP/1.1 over one kept-alive socket, for requests whose responses carry a Content-Length.

    http.client parses every response's headers with the email package: about 0.3 ms of CPU per
    request here, on the two cores the server and PostgreSQL use. This reads the status line, the
    Content-Length and Server-Timing headers and the body, and nothing else."""

    def __init__(self, port: int, timeout: float):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, head: bytes, body: bytes = b"") -> tuple[int, str, bytes]:
        """Sends `head` (request line and headers, without Content-Length or the blank line) and
        `body`; returns the status, the Server-Timing header and the body."""
        self.socket.sendall(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self.receive()
        header_block, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
        lines = header_block.split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.receive()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split(" ", 2)[1]), headers.get("server-timing", ""), payload

    def receive(self) -> None:
        chunk = self.socket.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.socket.close()


class AnnotatorClient(threading.Thread):
    """One annotator: fetch a lease, then submit-and-get-next until time is up."""

    def __init__(self, port: int, project_id: int, user, start: threading.Barrier, seconds: float):
        super().__init__(daemon=True)
        self.port, self.project_id, self.start_barrier, self.seconds = (
            port,
            project_id,
            start,
            seconds,
        )
        token = hashlib.sha256(f"csrf-{user.pk}-{random.random()}".encode()).hexdigest()[:32]
        self.headers = (
            f"Host: 127.0.0.1:{port}\r\n"
            f"Cookie: sessionid={session_for(user)}; csrftoken={token}\r\n"
            f"X-CSRFToken: {token}\r\n"
            "Content-Type: application/json\r\n"
            f"Referer: http://127.0.0.1:{port}/\r\n"
        ).encode()
        self.log = ClientLog()
        self.elapsed = 0.0

    def call(self, connection_: KeepAliveConnection, method: str, path: str, body=None):
        started = time.perf_counter()
        status, timing, payload = connection_.request(
            f"{method} {path} HTTP/1.1\r\n".encode() + self.headers,
            json.dumps(body).encode() if body else b"",
        )
        latency = (time.perf_counter() - started) * 1000
        return status, json.loads(payload or b"{}"), latency, server_timing(timing)

    def run(self) -> None:
        try:
            self.annotate()
        except Exception as error:  # noqa: BLE001 - reported with the results
            self.log.errors.append(f"{type(error).__name__}: {error}")
            self.start_barrier.abort()

    def annotate(self) -> None:
        conn = KeepAliveConnection(self.port, timeout=60)
        base = f"/annotate/api/projects/{self.project_id}"
        status, data, _, _ = self.call(conn, "GET", f"{base}/next/")
        if status != 200:
            raise RuntimeError(f"next task: HTTP {status} {data}")
        lease = data["task"]
        self.start_barrier.wait(timeout=120)
        started = time.perf_counter()
        deadline = started + self.seconds
        while lease is not None and time.perf_counter() < deadline:
            path = f"{base}/tasks/{lease['task_id']}/judgment/"
            body = {
                "kind": "pairwise",
                "choice": random.choice(CHOICES),
                "idempotency_key": lease["idempotency_key"],
            }
            status, data, latency, timing = self.call(conn, "POST", path, body)
            if status != 201:
                self.log.errors.append(f"{status}: {data}")
                break
            self.log.latency_ms.append(latency)
            self.log.server_ms.append(timing.get("view", float("nan")))
            self.log.server_cpu_ms.append(timing.get("cpu", float("nan")))
            self.log.confirmed[data["judgment_id"]] = lease["task_id"]
            if random.random() < RETRY_SHARE:
                self.log.retries += 1
                status, again, _, _ = self.call(conn, "POST", path, body)
                if status != 201 or again.get("judgment_id") != data["judgment_id"]:
                    self.log.retry_mismatches += 1
            lease = data["task"]
        self.elapsed = time.perf_counter() - started
        conn.close()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_pids(server: subprocess.Popen) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == server.pid:
                children.append(int(stat.parent.name))
    return [server.pid, *children]


def database_pids() -> list[int]:
    """PostgreSQL backends serving the server (this script's own connection excluded)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass
class CpuUse:
    """CPU seconds the server processes, their database backends and the clients (this
    process's threads) used during a run."""

    server: float
    database: float
    clients: float


def cpu_snapshot(server: subprocess.Popen) -> dict[str, dict[int, float]]:
    return {
        "server": {pid: cpu_seconds(pid) for pid in server_pids(server)},
        "database": {pid: cpu_seconds(pid) for pid in database_pids()},
        "clients": {os.getpid(): cpu_seconds(os.getpid())},
    }


def cpu_used(before: dict, after: dict) -> CpuUse:
    def spent(kind: str) -> float:
        return sum(cpu - before[kind].get(pid, 0.0) for pid, cpu in after[kind].items())

    return CpuUse(server=spent("server"), database=spent("database"), clients=spent("clients"))


def run_clients(
    port: int, project, users, seconds: float, server: subprocess.Popen
) -> tuple[list[AnnotatorClient], float, CpuUse]:
    barrier = threading.Barrier(len(users) + 1)
    clients = [AnnotatorClient(port, project.pk, user, barrier, seconds) for user in users]
    for client in clients:
        client.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed; see its log
        barrier.wait(timeout=120)
    before = cpu_snapshot(server)
    started = time.perf_counter()
    for client in clients:
        client.join()
    elapsed = time.perf_counter() - started
    return clients, elapsed, cpu_used(before, cpu_snapshot(server))


# --- 3. Consistency ---------------------------------------------------------------------------


def check_consistency(project, confirmed: dict[int, int]) -> list[str]:
    problems = []
    stored = dict(Judgment.objects.filter(task__project=project).values_list("pk", "task_id"))
    lost = set(confirmed) - set(stored)
    unconfirmed = set(stored) - set(confirmed)
    if lost:
        problems.append(f"{len(lost)} confirmed judgments are missing from the database")
    if unconfirmed:
        problems.append(f"{len(unconfirmed)} stored judgments were never confirmed to a client")
    if any(stored[pk] != task_id for pk, task_id in confirmed.items() if pk in stored):
        problems.append("a judgment is stored on a different task than the client submitted")
    tasks = AnnotationTask.objects.filter(project=project).annotate(
        stored=Count("judgments", distinct=True),
        leased=Count("assignments", filter=Q(assignments__status="leased"), distinct=True),
    )
    drift = tasks.exclude(judgment_count=F("stored")).count()
    if drift:
        problems.append(f"{drift} tasks' judgment_count differs from their stored judgments")
    over = tasks.filter(judgment_count__gt=F("judgments_wanted")).count()
    if over:
        problems.append(f"{over} tasks hold more judgments than they want")
    slots = tasks.exclude(slots_taken=F("stored") + F("leased")).count()
    if slots:
        problems.append(f"{slots} tasks' slots_taken differs from judgments plus live leases")
    pairs = Judgment.objects.filter(task__project=project).values("task_id", "annotator_id")
    if pairs.count() != pairs.distinct().count():
        problems.append("an annotator judged the same task twice")
    return problems


TARGET_JUDGMENTS_PER_S = 350  # 20x Label Studio's 17.5 submits/s with 8 clients
TARGET_P99_MS = 104  # next-task + submit, server time: a tenth of Label Studio's 1,040 ms
TARGET_TIMES_LABEL_STUDIO = 20  # throughput, against Label Studio measured in the same period
TARGET_NEXT_P99_MS = 10  # next-task alone, server time


def through_server(args, project, users, confirmed: dict[int, int]) -> dict[int, dict]:
    """Phase 2: clients against the server; returns figures per client count."""
    port = args.port or free_port()
    print(
        f"\n2. Through Granian ({args.workers} workers x {args.threads} threads), "
        f"JSON submit-and-next, {args.seconds:.0f} s per client count"
    )
    server = start_server(port, args.workers, args.threads)
    results = {}
    try:
        offset = 0
        for count in args.clients:
            group = users[offset : offset + count]
            offset += count
            load = os.getloadavg()[0]
            clients, elapsed, cpu = run_clients(port, project, group, args.seconds, server)
            done = sum(len(c.log.confirmed) for c in clients)
            server_ms = [ms for c in clients for ms in c.log.server_ms]
            errors = [e for c in clients for e in c.log.errors]
            mismatches = sum(c.log.retry_mismatches for c in clients)
            for c in clients:
                confirmed.update(c.log.confirmed)
            per_judgment = 1000 * (cpu.server + cpu.database) / max(done, 1)
            print(
                f"   {count:2d} clients: {done / elapsed:7.1f} judgments/s "
                f"({done:,} in {elapsed:.1f} s), errors {len(errors)}, "
                f"retries {sum(c.log.retries for c in clients)} (mismatched {mismatches}), "
                f"load average {load:.1f}"
            )
            print(
                f"      CPU per judgment: server {1000 * cpu.server / max(done, 1):.1f} ms + "
                f"PostgreSQL {1000 * cpu.database / max(done, 1):.1f} ms = {per_judgment:.1f} ms "
                f"(~{1000 / per_judgment:.0f} judgments/s per fully available core); "
                f"the clients used {1000 * cpu.clients / max(done, 1):.1f} ms more"
            )
            print(f"      server time (Server-Timing)  {describe(server_ms)}")
            cpu_ms = [ms for c in clients for ms in c.log.server_cpu_ms]
            print(f"      server CPU per request       {describe(cpu_ms)}")
            latency = [ms for c in clients for ms in c.log.latency_ms]
            print(f"      client latency               {describe(latency)}")
            for error in errors[:5]:
                print(f"      error: {error}")
            results[count] = {
                "rate": done / elapsed,
                "server_p99": percentile(server_ms, 0.99) if server_ms else float("nan"),
                "client_p99": percentile(latency, 0.99) if latency else float("nan"),
                "failures": len(errors) + mismatches,
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument(
        "--iterations", type=int, default=3_000, help="in-process next+submit pairs"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--label-studio-rate",
        type=float,
        help="submits/s with 8 clients that benchmarks/label_studio.py measured just before or "
        "after this run: this machine's speed drifts twofold, so that is the fair comparison",
    )
    parser.add_argument(
        "--label-studio-p99", type=float, help="its client latency p99 in ms, the same way"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run against PostgreSQL: tests/services.sh .venv/bin/python " + " ".join(sys.argv))

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    project, users = build_project(args.tasks, args.annotators)
    print(
        f"Built {args.tasks:,} tasks for {args.annotators} annotators "
        f"in {time.perf_counter() - started:.1f} s (PostgreSQL {connection.pg_version // 10000})."
    )
    print(
        f"Machine: {os.cpu_count()} CPU cores, shared by PostgreSQL, the server, the clients and "
        f"whatever else runs; {machine_pace()}.\n"
    )

    print(
        f"1. Server time in-process, {args.iterations:,} next-task + submit pairs "
        f"spread over {args.annotators} annotators"
    )
    _, _, confirmed = time_services(project, users, WARM_UP)  # warms caches; not measured
    with connection.cursor() as cursor:
        # As autovacuum would on a queue in use. The statistics taken after the build say no task
        # was ever leased or judged, and PostgreSQL builds the plans it caches for the prepared
        # queue statements from them: whole-table scans of the leases, three times the database
        # CPU per judgment (measured) until autovacuum's next ANALYZE replaced them.
        cursor.execute("ANALYZE")
    next_ms, submit_ms, measured = time_services(project, users, args.iterations)
    confirmed.update(measured)
    both_ms = [a + b for a, b in zip(next_ms, submit_ms, strict=True)]
    print(f"   next task        {describe(next_ms)}")
    print(f"   submit           {describe(submit_ms)}")
    print(f"   next + submit    {describe(both_ms)}")

    results = through_server(args, project, users, confirmed)

    print("\n3. Consistency")
    problems = check_consistency(project, confirmed)
    total = Judgment.objects.filter(task__project=project).count()
    for problem in problems:
        print(f"   PROBLEM: {problem}")
    if not problems:
        print(
            f"   {total:,} judgments stored, {len(confirmed):,} confirmed to clients: "
            "none lost, none duplicated, counters consistent."
        )

    print(f"\nAfter the runs, {machine_pace()}.")
    print("\nTargets")
    eight = results.get(8)
    checks = [
        (
            f">= {TARGET_JUDGMENTS_PER_S} judgments/s with 8 clients",
            eight is not None and eight["rate"] >= TARGET_JUDGMENTS_PER_S,
            f"{eight['rate']:.1f}/s" if eight else "not run",
        ),
        (
            f"next task p99 < {TARGET_NEXT_P99_MS} ms (in-process)",
            percentile(next_ms, 0.99) < TARGET_NEXT_P99_MS,
            f"{percentile(next_ms, 0.99):.1f} ms",
        ),
        (
            f"next + submit p99 < {TARGET_P99_MS} ms (in-process)",
            percentile(both_ms, 0.99) < TARGET_P99_MS,
            f"{percentile(both_ms, 0.99):.1f} ms",
        ),
        (
            f"submit-and-next p99 < {TARGET_P99_MS} ms (Server-Timing, 8 clients)",
            eight is not None and eight["server_p99"] < TARGET_P99_MS,
            f"{eight['server_p99']:.1f} ms" if eight else "not run",
        ),
        (
            "no lost or duplicated judgments, no failed request",
            not problems and not any(r["failures"] for r in results.values()),
            f"{len(problems)} problems",
        ),
    ]
    if args.label_studio_rate and eight is not None:
        checks.append(
            (
                f">= {TARGET_TIMES_LABEL_STUDIO}x Label Studio's {args.label_studio_rate}/s "
                "measured beside it (benchmarks/label_studio.py)",
                eight["rate"] >= TARGET_TIMES_LABEL_STUDIO * args.label_studio_rate,
                f"{eight['rate'] / args.label_studio_rate:.0f}x",
            )
        )
    if args.label_studio_p99 and eight is not None:
        checks.append(
            (
                f"client latency p99 < a tenth of Label Studio's {args.label_studio_p99:.0f} ms "
                "measured beside it",
                eight["client_p99"] < args.label_studio_p99 / 10,
                f"{eight['client_p99']:.1f} ms",
            )
        )
    for name, met, figure in checks:
        print(f"   {'met    ' if met else 'NOT MET'}  {name}: {figure}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
