"""Tasks from outputs: a project with N prompts of two outputs each (a TRL import), turned into N
pairwise tasks by create_tasks_from_completions, then asked again (everything there already).
Prints seconds and tasks per second for both.

    tests/services.sh .venv/bin/python benchmarks/task_creation.py [--prompts 20000]
"""

from __future__ import annotations

import argparse
import json
import time

from serving import machine_pace, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=20_000)
    args = parser.parse_args()
    setup_django()
    from feedback import services
    from feedback.services.imports import import_jsonl

    print(machine_pace())
    n = args.prompts
    lines = [
        json.dumps({"prompt": f"Question {i}?", "chosen": f"yes {i}", "rejected": f"no {i}"})
        for i in range(n)
    ]
    project = services.create_project(name=f"task creation benchmark {time.time():.0f}")
    import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="trl")
    for label in ("create", "again"):
        started = time.perf_counter()
        result = services.create_tasks_from_completions(project_id=project.pk, mode="pairwise")
        seconds = time.perf_counter() - started
        print(
            f"{label}: {result.created:,} tasks created, {result.already_there:,} there already, "
            f"over {2 * n:,} outputs in {seconds:.2f} s = {n / seconds:,.0f} prompts/s"
        )


if __name__ == "__main__":
    main()
