"""Leaderboard and agreement reads on a project of N imported Chatbot Arena battles (default
1,000,000 over 100 models, a quarter of them ties): seconds for the leaderboard computed from the
judgments, again from the cache, after one more battle (folded into the kept counts and Elo),
after one is taken back (all read again), with style control (then again after one more battle,
folded into the comparisons and style features kept),
and for the agreement report, first and cached (no human judgments among the battles: it should
cost little).

    tests/services.sh .venv/bin/python benchmarks/leaderboard.py [--battles 1000000] [--models 100]

The battles are written by the Arena import, 100,000 lines at a time; that setup is timed too.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from serving import machine_pace, setup_django, vacuum_database

IMPORT_LINES = 100_000
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def battles(rng: random.Random, start: int, count: int, models: int) -> list[str]:
    lines = []
    for n in range(start, start + count):
        a = rng.randrange(models)
        b = (a + 1 + rng.randrange(models - 1)) % models
        # Stronger models (higher numbers) win more often; a few outputs use markdown.
        p_a = 1 / (1 + 10 ** ((b - a) / (4 * models)))
        winner = (
            WINNERS[2 + (rng.random() < 0.5)]
            if rng.random() < 0.25
            else ("model_a" if rng.random() < p_a else "model_b")
        )
        lines.append(
            json.dumps(
                {
                    "model_a": f"model-{a:03d}",
                    "model_b": f"model-{b:03d}",
                    "winner": winner,
                    "prompt": f"Question {n}?",
                    "response_a": f"Answer {n} from {a}." + " **Bold.**" * (n % 3),
                    "response_b": f"Answer {n} from {b}, a longer one." + "\n- item" * (n % 2),
                }
            )
        )
    return lines


def timed(label: str, work):
    started = time.perf_counter()
    result = work()
    print(f"{label}: {time.perf_counter() - started:.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    setup_django()
    from django.core.cache import cache

    from feedback import insights, leaderboards, services
    from feedback.models import Judgment
    from feedback.services.imports import import_jsonl

    print(machine_pace())
    project = services.create_project(name=f"leaderboard benchmark {time.time():.0f}")
    rng = random.Random(0)
    started = time.perf_counter()
    for start in range(0, args.battles, IMPORT_LINES):
        count = min(IMPORT_LINES, args.battles - start)
        lines = battles(rng, start, count, args.models)
        import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="arena")
    print(f"setup: {args.battles:,} battles imported in {time.perf_counter() - started:.1f} s")
    vacuum_database()
    cache.clear()

    board = timed("leaderboard, computed", lambda: leaderboards.leaderboard(project.pk))
    timed("leaderboard, cached", lambda: leaderboards.leaderboard(project.pk))
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        lines=battles(rng, args.battles, 1, args.models),
        format="arena",
    )
    again = timed(
        "leaderboard after one more battle (folded in)",
        lambda: leaderboards.leaderboard(project.pk),
    )
    assert again.comparisons == board.comparisons + 1, (again.comparisons, board.comparisons)
    Judgment.objects.filter(task__project=project).earliest("pk").delete()
    again = timed(
        "leaderboard after one taken back (read whole)",
        lambda: leaderboards.leaderboard(project.pk),
    )
    assert again.comparisons == board.comparisons, (again.comparisons, board.comparisons)
    timed(
        "leaderboard with style control",
        lambda: leaderboards.leaderboard(project.pk, style_control=True),
    )
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        lines=battles(rng, args.battles + 1, 1, args.models),
        format="arena",
    )
    timed(
        "leaderboard with style control after one more battle (kept comparisons, folded)",
        lambda: leaderboards.leaderboard(project.pk, style_control=True),
    )
    timed("agreement report", lambda: insights.agreement_report(project.pk))
    timed("agreement report, cached", lambda: insights.agreement_report(project.pk))
    top = board.rows[0]
    print(
        f"{board.comparisons:,} comparisons, {len(board.rows)} models; first {top.model} "
        f"at {top.bt_score:.0f} ({top.bt_low:.0f} to {top.bt_high:.0f})"
    )


if __name__ == "__main__":
    main()
