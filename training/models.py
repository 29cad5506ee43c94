"""Alignment rounds and the training jobs that carry them out."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from feedback.models import ExportSnapshot, ModelVersion, Project, PromptSet


class RoundMethod(models.TextChoices):
    PPO = "ppo", "PPO with KL penalty (via a reward model)"
    DPO = "dpo", "DPO"


class RoundState(models.TextChoices):
    DRAFT = "draft", "Draft"
    GENERATING = "generating", "Generating samples"
    ANNOTATING = "annotating", "Collecting judgments"
    TRAINING_REWARD = "training_reward", "Training the reward model"
    TRAINING_POLICY = "training_policy", "Training the policy"
    EVALUATING = "evaluating", "Evaluating"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class AlignmentRound(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    policy = models.ForeignKey(
        ModelVersion, on_delete=models.RESTRICT, related_name="rounds_as_policy"
    )
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.RESTRICT, related_name="rounds")
    method = models.CharField(max_length=8, choices=RoundMethod.choices)
    hyperparameters = models.JSONField(default=dict, blank=True)
    samples_per_prompt = models.PositiveSmallIntegerField(default=2)
    judgments_wanted = models.PositiveIntegerField(
        help_text="Judgments to collect before training."
    )
    mix_parent_outputs = models.BooleanField(default=False)
    state = models.CharField(max_length=24, choices=RoundState.choices, default=RoundState.DRAFT)
    failed_state = models.CharField(
        max_length=24,
        choices=RoundState.choices,
        blank=True,
        help_text="Where it failed or stopped.",
    )
    snapshot = models.ForeignKey(
        ExportSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds"
    )
    reward_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evaluation = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="round_number_unique"),
            models.CheckConstraint(
                condition=Q(state__in=RoundState.values), name="round_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(method__in=RoundMethod.values), name="round_method_valid"
            ),
            models.CheckConstraint(
                condition=Q(samples_per_prompt__gte=2), name="round_two_samples"
            ),
            models.CheckConstraint(
                condition=Q(judgments_wanted__gte=1), name="round_wants_judgments"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} round {self.number}"


class JobKind(models.TextChoices):
    GENERATE = "generate", "Generate samples"
    REWARD_MODEL = "reward_model", "Train reward model"
    DPO = "dpo", "DPO"
    PPO = "ppo", "PPO"
    EVALUATE = "evaluate", "Evaluate"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class TrainingJob(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    alignment_round = models.ForeignKey(
        AlignmentRound, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.RESTRICT, related_name="jobs", help_text="The input model."
    )
    snapshot = models.ForeignKey(
        ExportSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="made_by_jobs"
    )
    config = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    metrics_history = models.JSONField(default=list, blank=True)
    log_tail = models.TextField(blank=True)
    artifacts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_heartbeat_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=JobKind.values), name="job_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100), name="job_progress_percent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job #{self.pk} ({self.status})"


class RoundDefaults(models.Model):
    """A project's own starting hyperparameters for new rounds, over the engine's defaults:
    {section: {key: value}} in the sections rounds use ("generation", "dpo", "reward", "ppo").
    The engine's defaults suit real models; a team (or the demo's tiny model) sets what works for
    theirs once, and every launch form starts from it."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="round_defaults")
    hyperparameters = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "round defaults"

    def __str__(self) -> str:
        return f"Round defaults of {self.project}"
