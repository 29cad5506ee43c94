"""What is judged: prompts, the model versions that answer them, and their completions."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Now

from feedback.wording import counted, what_was_made

from .collations import BYTE_ORDER
from .projects import Project


class ImportBatch(models.Model):
    """One bulk import; every row it created points back here."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_batches")
    source = models.CharField(max_length=500, blank=True, help_text="File name or URL.")
    format = models.CharField(max_length=40)
    line_count = models.PositiveIntegerField(default=0)
    made = models.JSONField(
        default=dict, blank=True, help_text='What it created, by kind: {"prompts": 10, ...}.'
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.format} import #{self.pk} ({counted(self.line_count, 'lines')})"

    @property
    def made_summary(self) -> str:
        return what_was_made(self.made)


def import_batch_field(related_name: str) -> models.ForeignKey:
    """The batch that imported a row. Not indexed: nothing reads rows by their batch, and an
    index on it cost every imported row a tenth of the import's time (benchmarks/api_import.py).
    Deleting a batch, which only the admin does, scans the table instead."""
    return models.ForeignKey(
        ImportBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name=related_name,
        db_index=False,
    )


def created_at_field() -> models.DateTimeField:
    """When an imported kind of row was created: set by Django when it saves one, and by the
    database where an import's COPY leaves it out (a timestamp a row, sent and read, for nothing)."""
    return models.DateTimeField(auto_now_add=True, db_default=Now())


class PromptSplit(models.TextChoices):
    TRAIN = "train", "Train"
    HELD_OUT = "held_out", "Held out (evaluation)"


class Prompt(models.Model):
    """A prompt: plain `text`, or a chat as `messages` ([{"role", "content"}, ...])."""

    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="prompts",
        db_index=False,  # the unique (project, content_hash) index serves it
    )
    text = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    content_hash = models.CharField(
        max_length=64,
        db_collation=BYTE_ORDER,
        help_text="sha256 of the normalised prompt; deduplicates imports.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=16, choices=PromptSplit.choices, default=PromptSplit.TRAIN)
    import_batch = import_batch_field(related_name="prompts")
    created_at = created_at_field()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(text="") | Q(messages__isnull=False), name="prompt_has_content"
            ),
            models.UniqueConstraint(
                fields=["project", "content_hash"], name="prompt_unique_per_project"
            ),
            models.CheckConstraint(
                condition=Q(split__in=PromptSplit.values), name="prompt_split_valid"
            ),
        ]

    def __str__(self) -> str:
        return (self.text or str(self.messages))[:80]

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


class PromptSet(models.Model):
    """A named selection of prompts that rounds and comparisons sample from."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompt_sets")
    name = models.CharField(max_length=200)
    prompts = models.ManyToManyField(Prompt, related_name="prompt_sets", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="prompt_set_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class ModelMethod(models.TextChoices):
    BASE = "base", "Base model"
    IMPORTED = "imported", "Imported outputs"
    REWARD_MODEL = "reward_model", "Reward model"
    DPO = "dpo", "DPO"
    PPO = "ppo", "PPO"


class ModelStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    ARCHIVED = "archived", "Archived"


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(max_length=200)
    base_model = models.CharField(
        max_length=500, blank=True, help_text="Hub id or local path of the base weights."
    )
    adapter_path = models.CharField(max_length=1000, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.RESTRICT, related_name="children"
    )
    method = models.CharField(max_length=16, choices=ModelMethod.choices, default=ModelMethod.BASE)
    alignment_round = models.ForeignKey(
        "training.AlignmentRound",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="produced_versions",
    )
    data_snapshot = models.ForeignKey(
        "feedback.ExportSnapshot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trained_versions",
    )
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.READY)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # The import that created it (naming it in a file), so deleting that import can take it back.
    import_batch = import_batch_field(related_name="model_versions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_version_name_unique"),
            models.CheckConstraint(
                condition=~Q(parent=F("id")), name="model_version_not_own_parent"
            ),
            models.CheckConstraint(
                condition=Q(method__in=ModelMethod.values), name="model_method_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ModelStatus.values), name="model_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Completion(models.Model):
    # Its index costs imports 1.7 us a completion, and pair exports need it: each run of pairs
    # fetches its prompt's completions by it (feedback/services/export_sql.py).
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="completions")
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="completions",
        help_text="Empty for outputs imported without a known model.",
        db_index=False,  # the (model_version, prompt) index below serves it
    )
    text = models.TextField()
    # The database default lets imports leave it out (feedback/services/bulk.py).
    generation_settings = models.JSONField(
        default=dict, db_default=Value({}, output_field=models.JSONField()), blank=True
    )
    token_count = models.PositiveIntegerField(null=True, blank=True)
    import_batch = import_batch_field(related_name="completions")
    created_at = created_at_field()

    class Meta:
        indexes = [
            # Every query of it names a model version; outputs imported without one (TRL and HH
            # files: two per line) are left out, and their imports write one index fewer.
            models.Index(
                fields=["model_version", "prompt"],
                condition=Q(model_version__isnull=False),
                name="completion_by_model_version",
            )
        ]

    def __str__(self) -> str:
        return self.text[:80]


def is_cut_off(finish_reason: object) -> bool:
    """Generation stopped at the token limit, not at an end of sequence (OpenAI's finish_reason
    "length"): annotators should know the text ends mid-thought."""
    return finish_reason == "length"
