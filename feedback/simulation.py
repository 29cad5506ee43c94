"""A simulated annotator with a hidden preference, judging through the same services people use.

It proves the loop end to end (samples -> judgments -> pairs -> training -> better samples) in tests
and lets the demo fill a round's quota without a person at the keyboard.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from feedback.models import AnnotationTask
from feedback.services import JudgmentInput, next_task_for, submit_judgment

Preference = Callable[[str], float]


def prefers_word(word: str) -> Preference:
    """Scores a response by how often it uses `word` (case-insensitive)."""
    needle = word.lower()
    return lambda text: float(text.lower().count(needle))


@dataclass(frozen=True)
class SimulationResult:
    judged: int
    task_ids: list[int]


def judge_task(task: AnnotationTask, prefers: Preference) -> JudgmentInput:
    """The judgment the hidden preference gives: higher score wins; equal scores tie."""
    items = [
        (item.completion_id, prefers(item.completion.text))
        for item in task.items.select_related("completion")
    ]
    key = uuid.uuid4().hex
    if task.mode == "pairwise":
        (_, score_a), (_, score_b) = items
        choice = "a" if score_a > score_b else "b" if score_b > score_a else "tie"
        return JudgmentInput(kind="pairwise", choice=choice, idempotency_key=key)
    levels = sorted({score for _, score in items}, reverse=True)
    ranking = [[cid for cid, score in items if score == level] for level in levels]
    if task.mode == "rating":
        top = max(levels) or 1.0
        ratings = {cid: 1 + round(6 * score / top) if top else 4 for cid, score in items}
        return JudgmentInput(kind="rating", ratings=ratings, idempotency_key=key)
    return JudgmentInput(kind="ranking", ranking=ranking, idempotency_key=key)


def simulate_annotator(
    *, annotator_id: int, project_id: int, prefers: Preference, max_tasks: int | None = None
) -> SimulationResult:
    """Take tasks from the annotator's queue and judge them until none are left (or `max_tasks`)."""
    judged: list[int] = []
    while max_tasks is None or len(judged) < max_tasks:
        assignment = next_task_for(annotator_id=annotator_id, project_id=project_id)
        if assignment is None:
            break
        submit_judgment(
            annotator_id=annotator_id,
            task_id=assignment.task_id,
            data=judge_task(assignment.task, prefers),
        )
        judged.append(assignment.task_id)
    return SimulationResult(judged=len(judged), task_ids=judged)
