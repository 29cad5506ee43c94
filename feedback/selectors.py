"""Reads for pages and the API: querysets scoped to what a user may see, and small aggregates."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from feedback.models import AnnotationTask, Judgment, Membership, Project, Role
from feedback.models.tasks import TaskStatus


def projects_for(user) -> QuerySet[Project]:
    """Projects the user belongs to; staff see every project."""
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def role_in(user, project_id: int) -> str | None:
    """The user's role in a project (staff count as admin), or None for non-members."""
    if user.is_staff:
        return Role.ADMIN
    return (
        Membership.objects.filter(user=user, project_id=project_id)
        .values_list("role", flat=True)
        .first()
    )


def has_role(user, project_id: int, *roles: str) -> bool:
    return role_in(user, project_id) in roles


@dataclass(frozen=True)
class QueueSummary:
    project: Project
    judged_today: int
    judged_total: int
    open_tasks: int


def queue_summaries_for(user) -> list[QueueSummary]:
    """Per project: the annotator's judgments today and in total, and tasks still open to them."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    projects = projects_for(user).annotate(
        judged_total=Count("tasks__judgments", filter=Q(tasks__judgments__annotator=user)),
        judged_today=Count(
            "tasks__judgments",
            filter=Q(tasks__judgments__annotator=user, tasks__judgments__created_at__gte=start_of_day),
        ),
    )
    summaries = []
    for project in projects:
        open_tasks = (
            AnnotationTask.objects.filter(project=project, status=TaskStatus.OPEN)
            .exclude(assignments__annotator=user)
            .count()
        )
        summaries.append(
            QueueSummary(project, project.judged_today, project.judged_total, open_tasks)
        )
    return summaries


def task_with_items(task_id: int) -> AnnotationTask | None:
    return (
        AnnotationTask.objects.select_related("prompt", "project")
        .prefetch_related("items__completion__model_version")
        .filter(pk=task_id)
        .first()
    )


def judgments_of_task(task_id: int) -> QuerySet[Judgment]:
    return Judgment.objects.filter(task_id=task_id).select_related("annotator").order_by("created_at")
