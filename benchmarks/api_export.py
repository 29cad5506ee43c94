"""Export benchmark: N preference pairs (default 1,000,000) streamed as JSONL through the API of a
real server (Granian, as production runs it); prints rows per second, the time to the first byte,
CPU seconds per million rows of the server worker and of PostgreSQL, and the worker's peak resident memory.

    tests/services.sh .venv/bin/python benchmarks/api_export.py [--pairs 1000000]
        [--variants standard conversational hh standard+margin] [--repeat 1]
        [--judgments 200000]  (also raw judgments: that many imported Arena battles)
        [--kept]  (also keep the pairs as a snapshot file with a POST, then download that file)

CPU seconds are the figure to compare on a shared machine: wall-clock rates move with whatever
else runs. Variants run one after another against the same server and data.

Setup writes prompts, completions and pairs with INSERT ... SELECT over generate_series (the
export reads only those tables), four completions and four pairs per prompt.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import shutil
import subprocess
import time
import urllib.parse

from serving import (
    PeakMemory,
    Server,
    ServingCpu,
    api_key,
    machine_pace,
    mib,
    setup_django,
    vacuum_database,
)

COMPLETIONS_PER_PROMPT = 4
# Four of the twelve ordered pairs of a prompt's four completions: (0,1) (2,3) (0,2) (3,1).
PAIR_OFFSETS = [(0, 1), (2, 3), (0, 2), (3, 1)]


def create_pairs(pairs: int) -> int:
    from django.db import connection, transaction

    from feedback import services
    from feedback.models import Completion, PreferencePair, Prompt

    project = services.create_project(name=f"export benchmark {time.time():.0f}")
    prompts = pairs // len(PAIR_OFFSETS)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Prompt._meta.db_table} (project_id, text, content_hash, metadata, split, created_at)
            SELECT %s, 'Question number ' || g || ': what would you say to a friend who ' ||
                   'asks for advice about learning to cook at home?',
                   md5(g::text) || md5((g + 1)::text), '{{}}', 'train', now()
            FROM generate_series(1, %s) g""",
            [project.pk, prompts],
        )
        cursor.execute(
            f"SELECT min(id) FROM {Prompt._meta.db_table} WHERE project_id = %s", [project.pk]
        )
        first_prompt = cursor.fetchone()[0]
        cursor.execute(
            f"""INSERT INTO {Completion._meta.db_table} (prompt_id, text, generation_settings, created_at)
            SELECT p.id, 'Answer ' || k || ' to question ' || p.id || ': start with simple recipes, ' ||
                   'cook with someone you like, and do not be afraid of "mistakes" — they teach you.',
                   '{{}}', now()
            FROM {Prompt._meta.db_table} p, generate_series(0, {COMPLETIONS_PER_PROMPT - 1}) k
            WHERE p.project_id = %s ORDER BY p.id, k""",
            [project.pk],
        )
        cursor.execute(
            f"SELECT min(id) FROM {Completion._meta.db_table} WHERE prompt_id = %s", [first_prompt]
        )
        first_completion = cursor.fetchone()[0]
        selects = " UNION ALL ".join(
            f"SELECT {n} AS n, {a} AS a, {b} AS b" for n, (a, b) in enumerate(PAIR_OFFSETS)
        )
        cursor.execute(
            f"""INSERT INTO {PreferencePair._meta.db_table}
                (project_id, prompt_id, chosen_id, rejected_id, margin, is_tie, policy, created_at)
            SELECT %s, %s + g, %s + g * {COMPLETIONS_PER_PROMPT} + o.a, %s + g * {COMPLETIONS_PER_PROMPT} + o.b,
                   1.0, false, 'benchmark', now()
            FROM generate_series(0, %s) g, ({selects}) o ORDER BY g, o.n""",
            [project.pk, first_prompt, first_completion, first_completion, prompts - 1],
        )
    # As autovacuum leaves settled data: the first read of fresh rows otherwise also pays for
    # setting their hint bits, which no export of older data does.
    vacuum_database()
    print(
        f"setup: {prompts:,} prompts, {prompts * COMPLETIONS_PER_PROMPT:,} completions, "
        f"{prompts * len(PAIR_OFFSETS):,} pairs in {time.perf_counter() - started:.1f} s"
    )
    return project.pk


def create_battles(count: int) -> int:
    """A project of `count` Arena battles, imported (each is a task, its two outputs and a
    judgment), for the raw judgments export."""
    from feedback import services
    from feedback.services.imports import import_jsonl

    project = services.create_project(name=f"judgments export benchmark {time.time():.0f}")
    started = time.perf_counter()
    for start in range(0, count, 100_000):
        lines = [
            json.dumps(
                {
                    "model_a": f"model-{n % 7}",
                    "model_b": f"model-{(n + 1) % 7}",
                    "winner": ("model_a", "model_b", "tie")[n % 3],
                    "prompt": f"Question {n}: which of these answers would you rather read?",
                    "response_a": f"The first answer to question {n}, short and plain.",
                    "response_b": f"The second answer to question {n}, with *a little* markdown.",
                }
            )
            for n in range(start, min(start + 100_000, count))
        ]
        import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="arena")
    vacuum_database()
    print(f"setup: {count:,} battles imported in {time.perf_counter() - started:.1f} s")
    return project.pk


def download(port: int, path: str, key: str) -> tuple[int, int, float, float, float]:
    """(rows, bytes, seconds to the first byte, total seconds, client CPU seconds) of a GET.

    The client is curl counting lines with wc, as the README's `curl ... > pairs.jsonl` pulls
    an export: reading 400 MiB through http.client costs the machine 1.7 s of CPU (the two
    cores are shared with the server and PostgreSQL), curl and wc about a tenth of that.
    Without curl, http.client reads it."""
    url = f"http://127.0.0.1:{port}{path}"
    if shutil.which("curl") is None:
        return download_in_python(url, key)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            'curl -sS --fail -H "Authorization: Bearer $1" '
            "-w '%{stderr}%{size_download} %{time_starttransfer}' \"$2\" | wc -l",
            "download",
            key,
            url,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"curl failed: {done.stderr.strip()[:500]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    size, first = done.stderr.split()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return int(done.stdout), int(size), float(first), seconds, cpu


def download_in_python(url: str, key: str) -> tuple[int, int, float, float, float]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    started, cpu = time.perf_counter(), time.process_time()
    connection.request(
        "GET", parts.path + "?" + parts.query, headers={"Authorization": f"Bearer {key}"}
    )
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {response.read()[:500]!r}")
    rows = size = 0
    first = None
    while True:
        block = response.read(1 << 20)
        if not block:
            break
        if first is None:
            first = time.perf_counter() - started
        rows += block.count(b"\n")
        size += len(block)
    return rows, size, first or 0.0, time.perf_counter() - started, time.process_time() - cpu


def export_variant(server: Server, key: str, project_id: int, variant: str) -> None:
    style, _, margin = variant.partition("+")
    path = (
        f"/api/v1/projects/{project_id}/exports/judgments/?format=jsonl"
        if variant == "judgments"
        else f"/api/v1/projects/{project_id}/exports/pairs/?format=jsonl&style={style}"
        f"&margin={'true' if margin else 'false'}"
    )
    with ServingCpu(server.worker_pid()) as cpu, PeakMemory(server.worker_pid()) as memory:
        rows, size, first_byte, seconds, client_cpu = download(server.port, path, key)
    from feedback.models import ExportSnapshot

    snapshot = ExportSnapshot.objects.filter(project_id=project_id).order_by("-pk").first()
    per_million = 1e6 / max(rows, 1)
    print(
        f"{variant}: {rows:,} rows, {size / 2**20:.0f} MiB in {seconds:.2f} s = "
        f"{rows / seconds:,.0f} rows/s, first byte after {first_byte:.2f} s; CPU per million rows: "
        f"server {cpu.server.seconds * per_million:.2f} s, PostgreSQL "
        f"{cpu.postgres.seconds * per_million:.2f} s, client {client_cpu * per_million:.2f} s; worker RSS {mib(memory.start)} before, "
        f"{mib(memory.peak)} peak (+{mib(memory.peak - memory.start)}); snapshot "
        f"#{snapshot.pk} {snapshot.status}, {snapshot.row_count:,} rows, "
        f"sha256 {snapshot.content_hash[:12]}",
        flush=True,
    )


def keep_and_fetch(server: Server, key: str, project_id: int) -> None:
    """POST the standard pairs export (kept as a file), then GET that snapshot's file."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    with ServingCpu(server.worker_pid()) as cpu, PeakMemory(server.worker_pid()) as memory:
        started = time.perf_counter()
        connection.request(
            "POST",
            f"/api/v1/projects/{project_id}/exports/pairs/",
            headers={"Authorization": f"Bearer {key}"},
        )
        response = connection.getresponse()
        snapshot = json.loads(response.read())
        kept = time.perf_counter() - started
    if response.status != 201:
        raise RuntimeError(f"{response.status}: {snapshot}")
    print(
        f"kept: {snapshot['row_count']:,} rows, {snapshot['byte_size'] / 2**20:.0f} MiB written "
        f"to snapshot #{snapshot['id']}'s file in {kept:.2f} s = "
        f"{snapshot['row_count'] / kept:,.0f} rows/s; CPU: server {cpu.server.seconds:.2f} s, "
        f"PostgreSQL {cpu.postgres.seconds:.2f} s; worker RSS +{mib(memory.peak - memory.start)}",
        flush=True,
    )
    file = urllib.parse.urlsplit(snapshot["file"]).path
    with ServingCpu(server.worker_pid()) as cpu, PeakMemory(server.worker_pid()) as memory:
        rows, size, first_byte, seconds, _ = download(server.port, file, key)
    print(
        f"kept file: {rows:,} rows, {size / 2**20:.0f} MiB in {seconds:.2f} s = "
        f"{rows / seconds:,.0f} rows/s, first byte after {first_byte:.3f} s; CPU: server "
        f"{cpu.server.seconds:.2f} s, PostgreSQL {cpu.postgres.seconds:.2f} s; worker RSS "
        f"+{mib(memory.peak - memory.start)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["standard"],
        help="pair styles (standard, conversational, hh), each optionally +margin",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--judgments", type=int, default=0, help="also export this many raw judgments"
    )
    parser.add_argument(
        "--kept",
        action="store_true",
        help="also keep the pairs export as a snapshot file (POST) and download that file",
    )
    args = parser.parse_args()
    setup_django()
    print(machine_pace())
    project_id = create_pairs(args.pairs) if args.pairs else None
    judged_id = create_battles(args.judgments) if args.judgments else None
    runs = []
    if project_id is not None:
        key = api_key("export-benchmark", project_id, role="reviewer")
        runs += [(key, project_id, variant) for variant in args.variants]
    if judged_id is not None:
        runs.append(
            (api_key("judgments-export-benchmark", judged_id, "reviewer"), judged_id, "judgments")
        )
    with Server() as server:
        # Warm up: imports, the database connection.
        key, warm_id, _ = runs[0]
        download(server.port, f"/api/v1/projects/{warm_id}/exports/pairs/?up_to_id=0", key)
        for _ in range(args.repeat):
            for key, export_id, variant in runs:
                export_variant(server, key, export_id, variant)
        if args.kept and project_id is not None:
            keep_and_fetch(server, runs[0][0], project_id)
    print(f"after the runs, {machine_pace()}")


if __name__ == "__main__":
    main()
