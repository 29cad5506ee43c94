"""Writes to the domain. Each service validates fully, writes in one transaction, and raises
`feedback.errors.ServiceError` with a message a user can act on. The UI and the API share them."""

from .judgments import JudgmentInput, submit_judgment, undo_last_judgment
from .projects import (
    add_member,
    create_completion,
    create_model_version,
    create_project,
    create_prompt,
    create_prompt_set,
)
from .queue import next_task_for, release_expired_leases, skip_task
from .reviews import adjudicate_task, mark_gold, set_gold_answer
from .tasks import create_task, create_tasks_from_completions

__all__ = [
    "JudgmentInput",
    "add_member",
    "adjudicate_task",
    "create_completion",
    "create_model_version",
    "create_project",
    "create_prompt",
    "create_prompt_set",
    "create_task",
    "create_tasks_from_completions",
    "mark_gold",
    "next_task_for",
    "release_expired_leases",
    "set_gold_answer",
    "skip_task",
    "submit_judgment",
    "undo_last_judgment",
]
