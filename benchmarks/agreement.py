"""The agreement report on a project of N tasks (default 50,000) each judged by two of 20
annotators (100,000 pairwise judgments by people): seconds to read the judgments as the pair and
agreement maths see them, and for the whole report (alphas, kappas, consensus, gold, position
bias, agreement by week), and for agreement_report's cached read. Pair derivation reads the
judgments the same way.

    tests/services.sh .venv/bin/python benchmarks/agreement.py [--tasks 50000] [--annotators 20]

The judgments are written with bulk_create (their setup is timed too), not through the queue.
"""

from __future__ import annotations

import argparse
import random
import time

from serving import machine_pace, setup_django, vacuum_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--annotators", type=int, default=20)
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from feedback import insights, services
    from feedback.models import AnnotationTask, Completion, Judgment, Prompt, TaskItem

    print(machine_pace())
    rng = random.Random(0)
    started = time.perf_counter()
    project = services.create_project(name=f"agreement benchmark {time.time():.0f}")
    people = [
        get_user_model().objects.create_user(f"agreement-{project.pk}-{i}")
        for i in range(args.annotators)
    ]
    prompts = Prompt.objects.bulk_create(
        Prompt(project=project, text=f"q{i}", content_hash=f"{i:064d}", metadata={})
        for i in range(args.tasks)
    )
    outputs = Completion.objects.bulk_create(
        Completion(prompt=prompt, text=f"answer {k}") for prompt in prompts for k in range(2)
    )
    tasks = AnnotationTask.objects.bulk_create(
        AnnotationTask(
            project=project, prompt=prompt, mode="pairwise", judgments_wanted=2, status="complete"
        )
        for prompt in prompts
    )
    TaskItem.objects.bulk_create(
        TaskItem(task=task, completion=outputs[2 * i + k], position=k)
        for i, task in enumerate(tasks)
        for k in range(2)
    )
    Judgment.objects.bulk_create(
        Judgment(
            task=task,
            annotator=person,
            kind="pairwise",
            # Mostly "a" (the better output), so that there is agreement to measure.
            choice="a" if rng.random() < 0.8 else "b",
            shown_order=[outputs[2 * i].pk, outputs[2 * i + 1].pk],
            idempotency_key=f"benchmark-{i}",
        )
        for i, task in enumerate(tasks)
        for person in rng.sample(people, 2)
    )
    vacuum_database()
    print(
        f"setup: {2 * args.tasks:,} judgments of {args.tasks:,} tasks by {args.annotators} "
        f"annotators in {time.perf_counter() - started:.1f} s"
    )
    for attempt in range(2):
        started = time.perf_counter()
        views = insights.judgment_views(project.pk)
        read = time.perf_counter() - started
        started = time.perf_counter()
        report = insights.computed_agreement_report(project.pk, insights.gold_answers(project.pk))
        whole = time.perf_counter() - started
        print(
            f"run {attempt + 1}: judgments read {read:.2f} s ({len(views):,}); agreement report "
            f"{whole:.2f} s (alpha {report.krippendorff_alpha:.3f}, pairwise alpha "
            f"{report.pairwise_alpha:.3f}, agreement {report.percent_agreement:.3f})"
        )
    for attempt in ("first read, cached for the next", "cached"):
        started = time.perf_counter()
        insights.agreement_report(project.pk)
        print(f"agreement_report, {attempt}: {time.perf_counter() - started:.2f} s")
    print(f"after the runs, {machine_pace()}")


if __name__ == "__main__":
    main()
