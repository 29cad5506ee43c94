"""Label Studio 1.23.2 measured beside Arbiter: pairwise annotation submits, task import and JSON
export through its REST API, on a throwaway `label-studio start` (Django's development server,
SQLite), as the comparisons in our issues describe it.

This machine's speed drifts up to twofold within an hour, so Label Studio's figures compare with
Arbiter's only when both are measured in the same period: read this script's output next to
benchmarks/queue_throughput.py (submits) and benchmarks/api_import.py (import, export) run just
before or after it, and next to the "machine pace" lines all three print.

Install Label Studio into a virtualenv of its own (it pins its own Django; never into .venv):
    python3.11 -m venv /tmp/lsvenv
    /tmp/lsvenv/bin/pip install label-studio==1.23.2
Run it with any Python 3.8+ (standard library only), from the repository:
    python3 benchmarks/label_studio.py --label-studio /tmp/lsvenv/bin/label-studio
Options: --tasks (imported, default 10,000), --clients (8), --seconds (of submitting, 20),
--export-tasks (annotated tasks exported, 2,000), --response-chars (per response, 600),
--without-sentry (Label Studio loads a Sentry client by default; measured here, it took about a
third of the server's CPU per submit).

What it does: starts `label-studio start` with its defaults (DEBUG off, its bundled Sentry
client, which reports exceptions only) in a temporary data directory on a free port, with an
admin user and a known API token; creates a pairwise project (a prompt, two responses, a choice
"A better / B better / tie / both bad"); POSTs the tasks to /api/projects/{id}/import in one
request, timed; lets the clients (threads, one keep-alive connection each) POST one annotation
per task to /api/tasks/{id}/annotations/, never two on the same task; checks in the SQLite
database that every acknowledged annotation is stored exactly once; imports more tasks with an
annotation each until --export-tasks are annotated (minutes of submits otherwise); GETs
/api/projects/{id}/export?exportType=JSON, timed, and checks it holds every annotation. Server
CPU seconds come from /proc (the server process, its threads and children): on a shared machine
they are steadier than wall-clock rates. The development server runs the app in threads of one
process, so the GIL keeps it near one core. The server is stopped and its data directory deleted
at the end, also on errors; the exit status is 1 when an annotation was lost or duplicated.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port, machine_pace  # noqa: E402 - benchmarks/ is not a package

ADMIN_EMAIL = "bench@example.com"
CHOICES = ["A better", "B better", "tie", "both bad"]
LABEL_CONFIG = """<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Response A"/>
  <Text name="a" value="$response_a"/>
  <Header value="Response B"/>
  <Text name="b" value="$response_b"/>
  <Choices name="preference" toName="a,b" choice="single" required="true">
    <Choice value="A better"/>
    <Choice value="B better"/>
    <Choice value="tie"/>
    <Choice value="both bad"/>
  </Choices>
</View>"""
WORDS = [
    "the", "model", "answer", "question", "because", "however", "first", "then", "second",
    "finally", "example", "result", "data", "value", "function", "return", "error", "user",
    "request", "response", "safe", "helpful", "honest", "explain", "consider", "step", "should",
    "would", "could", "might", "which", "where", "when", "while", "therefore", "summary",
]  # fmt: skip
# Environment variables Label Studio's settings read without a prefix (HOST, PORT, DEBUG,
# USERNAME, DATABASE_NAME...) would change the server, so it gets only these from ours.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def text_of(rng: random.Random, chars: int) -> str:
    """Filler prose of about `chars` characters."""
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words).capitalize() + "."


def pairwise_tasks(count: int, response_chars: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "data": {
                "prompt": text_of(rng, 200),
                "response_a": text_of(rng, response_chars),
                "response_b": text_of(rng, response_chars),
            }
        }
        for _ in range(count)
    ]


def preference_result(choice: str) -> list[dict]:
    """An annotation's result in Label Studio's format: the Choices tag's pick."""
    return [
        {
            "from_name": "preference",
            "to_name": "a",
            "type": "choices",
            "value": {"choices": [choice]},
        }
    ]


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) of a process, all its threads and its descendants, live or
    reaped (cutime/cstime), from /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we looked
            continue
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        fields = raw[raw.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = fields
    tree = {root_pid}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    ticks = sum(sum(int(value) for value in stats[pid][11:15]) for pid in tree if pid in stats)
    return ticks / CLOCK_TICKS


class Api:
    """One keep-alive connection to the server, authenticated with the legacy API token."""

    def __init__(self, port: int, token: str, timeout: float = 600) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def json(self, method: str, path: str, payload: object = None, expect: int = 200) -> dict:
        body = None if payload is None else json.dumps(payload).encode()
        status, content = self.request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path} answered {status}: {content[:500]!r}")
        return json.loads(content)

    def close(self) -> None:
        self.connection.close()


class LabelStudioServer:
    """`label-studio start` in a temporary data directory, stopped and deleted on exit."""

    def __init__(self, executable: str, has_sentry: bool = True) -> None:
        self.executable = executable
        self.has_sentry = has_sentry
        self.token = secrets.token_hex(20)
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="label-studio-bench-"))
        self.log_path = self.data_dir / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def database(self) -> Path:
        return self.data_dir / "label_studio.sqlite3"

    def __enter__(self) -> LabelStudioServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is not None:
            print(f"server log ({self.log_path}), last lines:\n{self.log_tail()}", file=sys.stderr)
        self.stop()

    def start(self) -> None:
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        env["LABEL_STUDIO_BASE_DATA_DIR"] = str(self.data_dir)
        if not self.has_sentry:
            # An empty DSN skips sentry_sdk.init(); its Django integration costs CPU per request.
            env["LABEL_STUDIO_SENTRY_DSN"] = ""
        command = [
            self.executable,
            "start",
            "--no-browser",
            "--data-dir",
            str(self.data_dir),
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--username",
            ADMIN_EMAIL,
            "--password",
            secrets.token_hex(12),
            "--user-token",
            self.token,
            # Since 1.18 an organization accepts "Authorization: Token ..." only when legacy
            # tokens are enabled; the alternative is JWT personal access tokens.
            "--enable-legacy-api-token",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_until_ready(timeout=600)

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio exited with {self.process.returncode}")
            api = Api(self.port, self.token, timeout=10)
            try:
                status, _ = api.request("GET", "/api/current-user/whoami")
            except OSError:
                status = None
            finally:
                api.close()
            if status == 200:
                return
            if status is not None and status != 503:
                raise RuntimeError(f"label-studio answered {status} to its admin's token")
            time.sleep(1)
        raise TimeoutError(f"label-studio did not answer within {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        return process_tree_cpu(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(unreadable: {error})"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Its own session (start_new_session): the group holds only the server and its children.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class SubmitRound:
    """What the clients saw: one latency per acknowledged annotation, failures by kind."""

    latencies: list[float] = field(default_factory=list)
    annotation_ids: list[int] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0


def submit_annotations(
    server: LabelStudioServer, task_queue: list[int], clients: int, seconds: float
) -> SubmitRound:
    """`clients` threads each POST pairwise annotations, each on a task taken from `task_queue`
    (so no two on one task), until `seconds` pass."""
    outcome = SubmitRound()
    lock = threading.Lock()
    rng = random.Random(11)
    deadline = time.monotonic() + seconds

    def client() -> None:
        api = Api(server.port, server.token, timeout=120)
        try:
            while True:
                with lock:
                    if not task_queue or time.monotonic() >= deadline:
                        return
                    task_id = task_queue.pop()
                    choice = rng.choice(CHOICES)
                annotation = {"result": preference_result(choice), "lead_time": 12.5}
                body = json.dumps(annotation).encode()
                started = time.perf_counter()
                try:
                    status, content = api.request(
                        "POST", f"/api/tasks/{task_id}/annotations/", body
                    )
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        outcome.failures[type(error).__name__] += 1
                    api.close()  # the next request opens a fresh connection
                    continue
                latency = time.perf_counter() - started
                with lock:
                    if status == 201:
                        outcome.latencies.append(latency)
                        outcome.annotation_ids.append(json.loads(content)["id"])
                    else:
                        outcome.failures[f"HTTP {status}: {content[:120]!r}"] += 1
        finally:
            api.close()

    cpu_before, client_before = server.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - started
    outcome.server_cpu = server.cpu_seconds() - cpu_before
    outcome.client_cpu = time.process_time() - client_before
    return outcome


def percentile(values: list[float], share: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


def report_submits(label: str, outcome: SubmitRound, clients: int) -> None:
    done = len(outcome.latencies)
    if done == 0:
        print(f"{label}: no annotation acknowledged; failures {dict(outcome.failures)}")
        return
    print(
        f"{label}: {done} annotations in {outcome.seconds:.1f} s with {clients} clients = "
        f"{done / outcome.seconds:.1f} submits/s; client latency p50 "
        f"{percentile(outcome.latencies, 50) * 1000:.0f} ms, p99 "
        f"{percentile(outcome.latencies, 99) * 1000:.0f} ms, max "
        f"{max(outcome.latencies) * 1000:.0f} ms; server CPU {outcome.server_cpu:.1f} s = "
        f"{outcome.server_cpu / done * 1000:.1f} ms per submit; client CPU "
        f"{outcome.client_cpu:.1f} s; failures {sum(outcome.failures.values())}"
        + (f" {dict(outcome.failures)}" if outcome.failures else "")
    )


def check_annotations(server: LabelStudioServer, project_id: int, acknowledged: list[int]) -> bool:
    """Every annotation a client was told about is stored once, and no task holds two."""
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as db:
        stored = [
            row[0]
            for row in db.execute(
                "SELECT id FROM task_completion WHERE project_id = ? AND was_cancelled = 0",
                (project_id,),
            )
        ]
        crowded = db.execute(
            "SELECT COUNT(*) FROM (SELECT task_id FROM task_completion WHERE project_id = ? "
            "GROUP BY task_id HAVING COUNT(*) > 1)",
            (project_id,),
        ).fetchone()[0]
    missing = set(acknowledged) - set(stored)
    unexpected = set(stored) - set(acknowledged)
    is_consistent = (
        not missing and not unexpected and crowded == 0 and len(acknowledged) == len(stored)
    )
    print(
        f"consistency (SQLite): {len(acknowledged)} acknowledged, {len(stored)} stored, "
        f"{len(missing)} lost, {len(unexpected)} unacknowledged extra, "
        f"{crowded} tasks with two or more: {'OK' if is_consistent else 'FAILED'}"
    )
    return is_consistent


def import_tasks(
    server: LabelStudioServer, api: Api, project_id: int, tasks: list[dict], label: str
) -> list[int]:
    """POST the tasks to the import API in one request, as a file upload would; returns their ids."""
    body = json.dumps(tasks).encode()
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    status, content = api.request(
        "POST", f"/api/projects/{project_id}/import?return_task_ids=true", body
    )
    seconds = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    if status != 201:
        raise RuntimeError(f"import answered {status}: {content[:500]!r}")
    imported = json.loads(content)
    print(
        f"{label}: {imported['task_count']} tasks, {imported['annotation_count']} annotations "
        f"({len(body) / 2**20:.1f} MiB of JSON) in {seconds:.2f} s = "
        f"{imported['task_count'] / seconds:,.0f} tasks/s; server CPU {cpu:.2f} s; "
        f"the server's own timing {imported['duration']:.2f} s"
    )
    return imported["task_ids"]


def export_annotated(server: LabelStudioServer, api: Api, project_id: int) -> int:
    """GET the JSON export of the annotated tasks; returns how many annotations it holds."""
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    status, content = api.request("GET", f"/api/projects/{project_id}/export?exportType=JSON")
    seconds = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    if status != 200:
        raise RuntimeError(f"export answered {status}: {content[:500]!r}")
    exported = json.loads(content)
    annotations = sum(len(task["annotations"]) for task in exported)
    print(
        f"export: {len(exported)} annotated tasks, {annotations} annotations "
        f"({len(content) / 2**20:.1f} MiB of JSON) in {seconds:.2f} s = "
        f"{len(exported) / seconds:,.0f} rows/s; server CPU {cpu:.2f} s"
    )
    return annotations


def print_pace(when: str) -> None:
    print(f"{when} {machine_pace()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label-studio", default="/tmp/lsvenv/bin/label-studio")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--export-tasks", type=int, default=2_000)
    parser.add_argument("--response-chars", type=int, default=600)
    parser.add_argument(
        "--without-sentry",
        action="store_true",
        help="start Label Studio with an empty SENTRY_DSN (by default it loads its Sentry client)",
    )
    args = parser.parse_args()
    if not os.access(args.label_studio, os.X_OK):
        sys.exit(f"{args.label_studio} is not executable: install Label Studio (see the docstring)")
    versions = subprocess.run(
        [
            str(Path(args.label_studio).parent / "python"),
            "-c",
            "import label_studio, django; print(label_studio.__version__, django.get_version())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(
        f"Label Studio {versions[0]} (Django {versions[1]}): label-studio start, SQLite, "
        f"Sentry client {'off' if args.without_sentry else 'on (its default)'}"
    )
    print_pace("start:")

    tasks = pairwise_tasks(args.tasks, args.response_chars)
    started = time.perf_counter()
    with LabelStudioServer(args.label_studio, has_sentry=not args.without_sentry) as server:
        print(f"server up in {time.perf_counter() - started:.1f} s (migrations included)")
        api = Api(server.port, server.token)
        project = api.json(
            "POST",
            "/api/projects",
            {"title": "Pairwise benchmark", "label_config": LABEL_CONFIG},
            expect=201,
        )
        task_ids = import_tasks(server, api, project["id"], tasks, "import")

        # pop() takes from the end: annotate from the first task on.
        timed = submit_annotations(server, list(reversed(task_ids)), args.clients, args.seconds)
        report_submits("submit", timed, args.clients)
        is_consistent = check_annotations(server, project["id"], timed.annotation_ids)

        # Reach --export-tasks annotated tasks quickly: more tasks, imported with an annotation
        # each (Label Studio stores them as the API's would be), rather than minutes of submits.
        missing = args.export_tasks - len(timed.annotation_ids)
        annotated = pairwise_tasks(max(missing, 0), args.response_chars, seed=8)
        for number, task in enumerate(annotated):
            task["annotations"] = [{"result": preference_result(CHOICES[number % 4])}]
        if annotated:
            import_tasks(server, api, project["id"], annotated, "pre-annotated import")

        exported = export_annotated(server, api, project["id"])
        expected = len(timed.annotation_ids) + len(annotated)
        if exported != expected:
            print(f"export holds {exported} annotations, not {expected}: FAILED")
            is_consistent = False
        api.close()
    print_pace("end:")
    return 0 if is_consistent else 1


if __name__ == "__main__":
    sys.exit(main())
