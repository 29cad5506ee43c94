"""Import benchmark: JSONL files of N lines (default 100,000) POSTed to the API of a real server
(Granian, as production runs it), fully validated and written in one transaction; prints seconds and lines per second for
each format, and the Anthropic HH file end to end (import, export, same pairs out).

    tests/services.sh .venv/bin/python benchmarks/api_import.py [--lines 100000]
        [--formats prompts,completions,trl]  (also: trl_chat, trl_csv, arena) [--repeat 3]
        [--delete [project]]  (then delete each import, or its project, through the API, timed)
        [--checked-role]  (serve as a database role that may not skip foreign-key checks, as
                           on a managed PostgreSQL where the app's role is no superuser)

Besides wall-clock seconds it prints the CPU seconds of the server's worker, of PostgreSQL and
of this client for each import: on a shared machine they are the steadier figures.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import http.client
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from serving import (
    ROOT,
    PeakMemory,
    Server,
    ServingCpu,
    api_key,
    machine_pace,
    mib,
    setup_django,
    vacuum_database,
)

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "helpful",
    "honest",
    "harmless",
    "assistant",
    "user",
    "explain",
    "why",
    "how",
    "what",
    "when",
    "careful",
    "detailed",
    "short",
    "long",
    "example",
    "because",
    "therefore",
    "however",
    "cooking",
    "garden",
    "river",
    "city",
    "music",
]
HH_FILE = next(
    (
        path
        for path in (
            ROOT.parent / "shared/data/hh_rlhf_harmless_base_test.jsonl.gz",
            Path("/work/shared/data/hh_rlhf_harmless_base_test.jsonl.gz"),
        )
        if path.exists()
    ),
    None,
)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


# Benchmark files whose import format is not their name: TRL conversational (message lists),
# and the TRL pairs as CSV (a spreadsheet's columns prompt, chosen, rejected).
IMPORT_FORMAT = {"trl_chat": "trl", "trl_csv": "trl"}


def record(format: str, n: int, rng: random.Random) -> dict:
    prompt = f"Question {n}: {sentence(rng, 12)}?"
    if format == "prompts":
        return {"prompt": prompt, "metadata": {"source": "benchmark", "n": n}}
    if format == "completions":
        return {"prompt": prompt, "completion": sentence(rng, 40), "model": f"model-{n % 4}"}
    if format == "trl_chat":
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": sentence(rng, 40)}],
            "rejected": [{"role": "assistant", "content": sentence(rng, 35)}],
        }
    if format == "arena":
        return {
            "model_a": f"model-{n % 4}",
            "model_b": f"model-{(n + 1) % 4}",
            "winner": rng.choice(("model_a", "model_b", "tie", "tie (bothbad)")),
            "prompt": prompt,
            "response_a": sentence(rng, 40),
            "response_b": sentence(rng, 35),
        }
    return {"prompt": prompt, "chosen": sentence(rng, 40), "rejected": sentence(rng, 35)}


def write_file(format: str, lines: int) -> Path:
    rng = random.Random(0)
    if format == "trl_csv":
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["prompt", "chosen", "rejected"])
            writer.writeheader()
            writer.writerows(record("trl", n, rng) for n in range(lines))
        return Path(handle.name)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for n in range(lines):
            handle.write(json.dumps(record(format, n, rng)) + "\n")
    return Path(handle.name)


def post_file(
    port: int, path: str, key: str, file: Path, content_encoding: str = ""
) -> tuple[int, dict, float]:
    # Sent a MiB at a time, as curl sends a file (http.client's default is 8 KiB blocks).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1200, blocksize=1 << 20)
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "text/csv" if file.suffix == ".csv" else "application/jsonl",
        "Content-Length": str(file.stat().st_size),
    }
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    started = time.perf_counter()
    with file.open("rb") as body:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read() or b"{}")
    return response.status, payload, time.perf_counter() - started


def get_lines(port: int, path: str, key: str) -> list[bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1200)
    connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    return response.read().split(b"\n")[:-1]


def import_once(
    server, services, format: str, file: Path, size: int, lines: int, delete: str = ""
) -> float:
    """One import of `file` into a fresh project; prints its figures, returns its seconds. With
    `delete` ("import" or "project"), that is then deleted through the API, and timed too."""
    project = services.create_project(name=f"import benchmark {format} {time.time():.3f}")
    key = api_key(f"import-benchmark-{format}", project.pk)
    vacuum_database()
    client_cpu = time.process_time()
    with PeakMemory(server.worker_pid()) as memory, ServingCpu(server.worker_pid()) as cpu:
        status, payload, seconds = post_file(
            server.port,
            f"/api/v1/projects/{project.pk}/imports/?import_format={IMPORT_FORMAT.get(format, format)}",
            key,
            file,
        )
    client_cpu = time.process_time() - client_cpu
    if status != 201:
        raise RuntimeError(f"{format}: {status} {str(payload)[:500]}")
    print(
        f"import {format:12s}: {lines:,} lines ({mib(size)}) "
        f"in {seconds:.2f} s = {lines / seconds:,.0f} lines/s; created {payload['created']}; "
        f"{cpu}, client {client_cpu:.2f} s; "
        f"worker RSS peak {mib(memory.peak)}"
    )
    if delete:
        with ServingCpu(server.worker_pid()) as cpu:
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1200)
            path = f"/api/v1/projects/{project.pk}/"
            if delete == "import":
                path += f"imports/{payload['batch']['id']}/"
            connection.request("DELETE", path, headers={"Authorization": f"Bearer {key}"})
            response = connection.getresponse()
            deleted = json.loads(response.read())
            took = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"delete {format}: {response.status} {deleted}")
        print(f"  deleted in {took:.2f} s ({cpu}): {deleted['detail']}")
    return seconds


def use_checked_role() -> None:
    """Point the server at a login role with the tables' rights but not the superuser's (nor
    SET on session_replication_role): imports and deletions then check references row by row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN CREATE ROLE arbiter_checked LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        cursor.execute(
            "GRANT ALL ON SCHEMA public TO arbiter_checked; "
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO arbiter_checked; "
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO arbiter_checked"
        )
    url = urlsplit(os.environ["DATABASE_URL"])
    host = url.netloc.rsplit("@", 1)[-1]
    os.environ["DATABASE_URL"] = urlunsplit(url._replace(netloc=f"arbiter_checked@{host}"))
    print("serving as a role that checks foreign keys row by row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--formats", default="prompts,completions,trl")
    # The machine's speed drifts within minutes (see machine_pace): one run per format says
    # little, the median of a few says more.
    parser.add_argument("--repeat", type=int, default=3, help="imports of each file")
    parser.add_argument(
        "--delete",
        nargs="?",
        const="import",
        default="",
        choices=("import", "project"),
        help="then delete each import (or with 'project', its project) through the API, timed",
    )
    parser.add_argument(
        "--checked-role",
        action="store_true",
        help="serve as a role that may not skip PostgreSQL's per-row foreign-key checks",
    )
    args = parser.parse_args()
    setup_django()
    from feedback import services

    print(machine_pace())
    if args.checked_role:
        use_checked_role()
    with Server() as server:
        # A first request loads the URLconf (scipy and friends, seconds of CPU) and the import
        # code; a serving worker has done that long before, so keep it out of the figures.
        project = services.create_project(name=f"import benchmark warm-up {time.time():.0f}")
        file = write_file("prompts", 10)
        try:
            post_file(
                server.port,
                f"/api/v1/projects/{project.pk}/imports/?import_format=prompts",
                api_key("import-benchmark-warm-up", project.pk),
                file,
            )
        finally:
            file.unlink()
        for format in args.formats.split(","):
            file = write_file(format, args.lines)
            size = file.stat().st_size
            times = []
            try:
                for _ in range(args.repeat):
                    times.append(
                        import_once(server, services, format, file, size, args.lines, args.delete)
                    )
            finally:
                file.unlink()
            if args.repeat > 1:
                print(
                    f"import {format:12s}: median {statistics.median(times):.2f} s of {args.repeat} "
                    f"(from {min(times):.2f} to {max(times):.2f} s)"
                )
        if HH_FILE is not None:
            project = services.create_project(name=f"import benchmark hh {time.time():.0f}")
            key = api_key("import-benchmark-hh", project.pk)
            with ServingCpu(server.worker_pid()) as cpu:
                status, payload, seconds = post_file(
                    server.port,
                    f"/api/v1/projects/{project.pk}/imports/?import_format=hh",
                    key,
                    HH_FILE,
                    "gzip",
                )
            if status != 201:
                raise RuntimeError(f"hh: {status} {str(payload)[:500]}")
            started = time.perf_counter()
            exported = get_lines(
                server.port, f"/api/v1/projects/{project.pk}/exports/pairs/?style=hh", key
            )
            export_seconds = time.perf_counter() - started
            with gzip.open(HH_FILE, "rb") as handle:
                originals = [json.loads(line) for line in handle]
            same = [json.loads(line) for line in exported] == originals
            print(
                f"HH round trip: {payload['lines']:,} lines imported in {seconds:.2f} s ({cpu}), exported in "
                f"{export_seconds:.2f} s; same pairs out: {same}"
            )
            if not same:
                raise SystemExit("HH round trip differs")
    print(f"after the runs, {machine_pace()}")


if __name__ == "__main__":
    main()
