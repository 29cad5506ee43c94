"""Arbiter's domain model. Invariants the database can hold are declared as constraints here."""

from .exports import ExportSnapshot
from .judgments import Adjudication, Judgment, PairJudgment, PreferencePair
from .projects import Invitation, Membership, Project, Removal, Role
from .prompts import Completion, ImportBatch, ModelVersion, Prompt, PromptSet
from .tasks import AnnotationTask, Assignment, TaskItem
from .tokens import ApiToken

__all__ = [
    "Adjudication",
    "AnnotationTask",
    "ApiToken",
    "Assignment",
    "Completion",
    "ExportSnapshot",
    "ImportBatch",
    "Invitation",
    "Removal",
    "Judgment",
    "Membership",
    "ModelVersion",
    "PairJudgment",
    "PreferencePair",
    "Project",
    "Prompt",
    "PromptSet",
    "Role",
    "TaskItem",
]
