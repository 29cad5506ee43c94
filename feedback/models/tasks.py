"""Annotation tasks and the leases annotators hold on them.

A task shows one prompt with 2..k of its completions and wants `judgments_wanted` judgments from
different annotators. `slots_taken` counts live leases plus submitted judgments, so the queue can
find open work with one indexed comparison; the check constraints keep the counters honest.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .projects import JudgmentMode, Project
from .prompts import Completion, Prompt, import_batch_field


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"
    ARCHIVED = "archived", "Archived"


class AnnotationTask(models.Model):
    # No index of its own: task_queue_idx starts with the project. Every index is written again
    # on each lease and judgment, so redundant ones cost the queue's hot path.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tasks", db_index=False
    )
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    mode = models.CharField(max_length=16, choices=JudgmentMode.choices)
    completions = models.ManyToManyField(Completion, through="TaskItem", related_name="tasks")
    judgments_wanted = models.PositiveSmallIntegerField(default=1)
    slots_taken = models.PositiveSmallIntegerField(default=0)
    judgment_count = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    priority = models.SmallIntegerField(default=0, help_text="Higher is served first.")
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(
        null=True,
        blank=True,
        help_text='Known answer for gold tasks: {"choice": "a"} or {"ranking": [[id], [id, id]]}.',
    )
    alignment_round = models.ForeignKey(
        "training.AlignmentRound",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
        db_index=False,  # task_round_idx, partial
    )
    # Set on the tasks of imported Chatbot Arena battles, whose verdicts are not annotators' work.
    import_batch = import_batch_field(related_name="tasks")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The queue's scan: open tasks of a project, fullest first.
            models.Index(
                fields=["project", "status", "-priority", "-slots_taken", "id"],
                name="task_queue_idx",
            ),
            # Only round tasks: the others (most) would each add an entry for NULL, written
            # again with every lease and judgment.
            models.Index(
                fields=["alignment_round"],
                condition=Q(alignment_round__isnull=False),
                name="task_round_idx",
            ),
            # Gold checks served beside the queue: a project's few gold tasks, oldest first.
            models.Index(fields=["project", "id"], condition=Q(is_gold=True), name="task_gold_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(mode__in=JudgmentMode.values), name="task_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=TaskStatus.values), name="task_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(judgments_wanted__gte=1), name="task_wants_a_judgment"
            ),
            models.CheckConstraint(
                condition=Q(slots_taken__lte=F("judgments_wanted")),
                name="task_slots_within_overlap",
            ),
            models.CheckConstraint(
                condition=Q(judgment_count__lte=F("slots_taken")), name="task_judgments_hold_slots"
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_answer__isnull=False),
                name="gold_task_has_answer",
            ),
            # A round counts its tasks' judgments; gold checks would add to them.
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(alignment_round__isnull=True),
                name="gold_task_not_in_round",
            ),
        ]

    def __str__(self) -> str:
        return f"Task #{self.pk} ({self.mode})"


class TaskItem(models.Model):
    """A completion's place in a task; position 0 is "A", 1 is "B" in pairwise tasks."""

    # Indexed by the unique constraints, which start with the task.
    task = models.ForeignKey(
        AnnotationTask, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    # RESTRICT, not PROTECT: an output a task shows cannot be deleted on its own, yet goes with
    # its project, whose deletion takes the task and so its items too. (So do the other
    # RESTRICTs: model versions under their outputs, children, rounds and jobs.)
    completion = models.ForeignKey(Completion, on_delete=models.RESTRICT, related_name="task_items")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "completion"], name="task_item_unique_completion"
            ),
            models.UniqueConstraint(fields=["task", "position"], name="task_item_unique_position"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} #{self.position}: completion {self.completion_id}"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"


class SkipReason(models.TextChoices):
    SKIP = "skip", "Skipped"
    UNSAFE = "unsafe", "Flagged unsafe"
    BROKEN = "broken", "Flagged broken"
    UNREADABLE = "unreadable", "Flagged unreadable"


class Assignment(models.Model):
    """An annotator's slot on a task: leased until `expires_at`, then submitted or skipped.

    An expired lease is deleted by the queue, which frees the slot for someone else.
    """

    # Indexed by one_assignment_per_annotator and assignment_annotator_idx, which start with them.
    task = models.ForeignKey(
        AnnotationTask, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
    )
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    shown_order = models.JSONField(
        default=list, help_text="Completion ids in the order this annotator is shown them."
    )
    skip_reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    skip_note = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Served as a gold check (feedback/services/queue.py): its judgment scores the annotator's
    # gold accuracy and is not preference data, and its slot was wanted beyond the task's quota.
    is_check = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["status", "expires_at"], name="assignment_expiry_idx"),
            models.Index(fields=["annotator", "status"], name="assignment_annotator_idx"),
            # Gold checks, read for gold accuracy: few among the assignments.
            models.Index(fields=["task"], condition=Q(is_check=True), name="assignment_check_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "annotator"], name="one_assignment_per_annotator"
            ),
            models.CheckConstraint(
                condition=Q(status__in=AssignmentStatus.values), name="assignment_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("leased_at")), name="assignment_lease_positive"
            ),
            models.CheckConstraint(
                condition=~Q(status=AssignmentStatus.SKIPPED) | ~Q(skip_reason=""),
                name="skip_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} for annotator {self.annotator_id}: {self.status}"
