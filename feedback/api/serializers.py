"""Input and output shapes of the API. Inputs are parsed here and handed to a service as plain
values; outputs list their fields explicitly."""

from django.urls import reverse
from rest_framework import serializers

from feedback.ids import MAX_ID
from feedback.models import (
    AnnotationTask,
    ApiToken,
    Completion,
    ExportSnapshot,
    ImportBatch,
    Invitation,
    Judgment,
    Membership,
    ModelVersion,
    PreferencePair,
    Project,
    Prompt,
    PromptSet,
    Role,
)
from feedback.models.exports import ExportStatus
from feedback.models.projects import INVITABLE_ROLES, MAX_GOLD_PERCENT, JudgmentMode
from feedback.models.tasks import SkipReason
from feedback.services.exports import PAIR_STYLES, ExportFilters


class ProjectSerializer(serializers.ModelSerializer):
    modes = serializers.ListField(
        source="enabled_modes", child=serializers.CharField(), read_only=True
    )

    class Meta:
        model = Project
        fields = ["id", "name", "guidelines", "modes", "overlap", "gold_percent", "created_at"]


class ProjectContentsSerializer(serializers.Serializer):
    prompts = serializers.IntegerField()
    outputs = serializers.IntegerField()
    tasks = serializers.IntegerField()
    open_tasks = serializers.IntegerField()


class ProjectDetailSerializer(ProjectSerializer):
    """A project with `contents`, the selectors.project_contents the view attaches."""

    contents = ProjectContentsSerializer(read_only=True)

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "contents"]


class ProjectSettingsSerializer(serializers.Serializer):
    """A project's settings; on a change, those left out keep their values."""

    guidelines = serializers.CharField(required=False, allow_blank=True, help_text="Markdown.")
    modes = serializers.ListField(
        child=serializers.ChoiceField(choices=JudgmentMode.choices),
        required=False,
        allow_empty=False,
        help_text="The judgment modes annotators are served.",
    )
    overlap = serializers.IntegerField(
        required=False, help_text="Judgments wanted per task (1 to 100)."
    )
    gold_percent = serializers.IntegerField(
        required=False,
        help_text=f"Of the tasks served, the share (0 to {MAX_GOLD_PERCENT}) that are gold "
        "checks: gold tasks the annotator has not seen, while there are some.",
    )


class ProjectCreationSerializer(ProjectSettingsSerializer):
    name = serializers.CharField(max_length=200)

    def get_fields(self):
        fields = super().get_fields()
        return {"name": fields.pop("name"), **fields}  # the one it needs, first


class MemberSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "username", "role"]


class MemberAdditionSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="An active account's username.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.ANNOTATOR)


class InvitationSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "role", "created_by", "created_at", "expires_at", "uses"]


class IssuedInvitationSerializer(InvitationSerializer):
    link = serializers.CharField(help_text="Shown this once: only its hash is kept.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "link"]


class InvitationCreationSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=[role.value for role in INVITABLE_ROLES], default=Role.ANNOTATOR
    )
    days = serializers.IntegerField(default=7, help_text="How long the link works (1 to 30).")


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class VersionNameSerializer(serializers.Serializer):
    name = serializers.CharField(trim_whitespace=False)


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "base_model",
            "method",
            "status",
            "parent",
            "alignment_round",
            "data_snapshot",
            "import_batch",
            "metrics",
            "created_at",
        ]


class PromptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = ["id", "text", "messages", "metadata", "split", "import_batch", "created_at"]


class CompletionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Completion
        fields = [
            "id",
            "prompt",
            "model_version",
            "text",
            "token_count",
            "generation_settings",
            "created_at",
        ]


class DeletedTasksSerializer(serializers.Serializer):
    deleted = serializers.IntegerField()


class PromptSetSerializer(serializers.ModelSerializer):
    prompt_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = PromptSet
        fields = ["id", "name", "prompt_count", "created_at"]


class PromptSetCreationSerializer(serializers.Serializer):
    """Either `prompt_ids`, or the project's prompts (of one `import_batch`, when given) in
    `split` (null: both splits)."""

    name = serializers.CharField(max_length=200)
    prompt_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_empty=False, max_length=1_000_000
    )
    import_batch = serializers.IntegerField(required=False)
    split = serializers.ChoiceField(
        choices=["train", "held_out"], required=False, allow_null=True, default="train"
    )


class ImportBatchSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ImportBatch
        fields = ["id", "format", "source", "line_count", "made", "created_by", "created_at"]


class ImportResultSerializer(serializers.Serializer):
    batch = ImportBatchSerializer(allow_null=True, help_text="null after a dry run")
    format = serializers.CharField()
    lines = serializers.IntegerField()
    created = serializers.DictField(child=serializers.IntegerField())


class DeletedImportSerializer(serializers.Serializer):
    detail = serializers.CharField(source="summary")
    prompts = serializers.IntegerField()
    completions = serializers.IntegerField()
    pairs = serializers.IntegerField()
    tasks = serializers.IntegerField()
    model_versions = serializers.IntegerField()
    kept_prompts = serializers.IntegerField()
    kept_model_versions = serializers.IntegerField()


class DeletedProjectSerializer(serializers.Serializer):
    detail = serializers.CharField(source="summary")
    rows = serializers.DictField(
        child=serializers.IntegerField(), help_text="Rows deleted, by table (app.Model)."
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    details = serializers.ListField(child=serializers.CharField(), required=False)


class LeasedItemSerializer(serializers.Serializer):
    completion_id = serializers.IntegerField()
    position = serializers.IntegerField(
        help_text="The output's place in the task: a pairwise choice 'a' names position 0 and "
        "'b' position 1, whatever order the items are listed in."
    )
    text = serializers.CharField()


# Read from what the lease shows (feedback.selectors.TaskShown), which the lease statement selects
# with it: no query per field.
class LeaseSerializer(serializers.Serializer):
    """A task leased to the caller, its outputs in the order this annotator is to see them
    (shuffled per annotator against position bias: a pairwise choice names a position, not a
    place in this list)."""

    task_id = serializers.IntegerField()
    project_id = serializers.IntegerField(source="shown.project_id")
    mode = serializers.CharField(source="shown.mode")
    prompt_text = serializers.CharField(source="shown.prompt_text")
    prompt_messages = serializers.JSONField(source="shown.prompt_messages")
    items = serializers.SerializerMethodField()
    lease_expires_at = serializers.DateTimeField(source="expires_at")

    def get_items(self, assignment) -> list[dict]:
        outputs = assignment.shown.outputs
        return LeasedItemSerializer(
            [
                {"completion_id": cid, "position": outputs[cid].position, "text": outputs[cid].text}
                for cid in assignment.shown_order
            ],
            many=True,
        ).data


class SkipSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=SkipReason.choices, default=SkipReason.SKIP)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class JudgmentInputSerializer(serializers.Serializer):
    """Field rules live in feedback.services.judgments (shared with the annotator UI); this only
    checks JSON types."""

    task = serializers.IntegerField()
    kind = serializers.CharField()
    idempotency_key = serializers.CharField(max_length=100)
    choice = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Pairwise: 'a' (the leased item at position 0 won), 'b' (position 1), 'tie' "
        "or 'both_bad'.",
    )
    strength = serializers.CharField(required=False, allow_null=True, default=None)
    ranking = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        required=False,
        allow_null=True,
        default=None,
    )
    ratings = serializers.DictField(
        child=serializers.IntegerField(), required=False, allow_null=True, default=None
    )
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None)
    flags = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class GoldAnswerSerializer(serializers.Serializer):
    """One of judgment, choice or ranking: the task's known answer. Rules live in
    feedback.services.reviews (shared with the Review tab)."""

    judgment = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="One of the task's judgments."
    )
    choice = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Pairwise: 'a' (the task's first completion won), 'b', 'tie' or 'both_bad'.",
    )
    ranking = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        required=False,
        allow_null=True,
        default=None,
        help_text="Ranking: groups of the task's completion ids, best first.",
    )
    note = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, data):
        given = [name for name in ("judgment", "choice", "ranking") if data[name] is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                "Give the answer as one of judgment, choice or ranking."
            )
        return data


class GoldTaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnnotationTask
        fields = ["id", "mode", "status", "is_gold", "gold_answer"]


class JudgmentSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    project = serializers.IntegerField(source="task.project_id", read_only=True)

    class Meta:
        model = Judgment
        fields = [
            "id",
            "task",
            "project",
            "annotator",
            "kind",
            "choice",
            "strength",
            "ranking",
            "ratings",
            "shown_order",
            "rationale",
            "time_spent_ms",
            "flags",
            "created_at",
        ]


class PairSerializer(serializers.ModelSerializer):
    class Meta:
        model = PreferencePair
        fields = ["id", "prompt", "chosen", "rejected", "margin", "is_tie", "policy", "created_at"]


class PairPolicySerializer(serializers.Serializer):
    """A feedback.pairs.PairPolicy; see its docstring for what each setting does."""

    name = serializers.CharField(max_length=64)
    ranking_pairs = serializers.ChoiceField(
        choices=["all", "adjacent", "best_vs_rest"], default="all"
    )
    ties = serializers.ChoiceField(choices=["drop", "keep"], default="drop")
    both_bad = serializers.ChoiceField(choices=["drop", "tie"], default="drop")
    aggregate = serializers.ChoiceField(choices=["majority", "bradley_terry"], default="majority")
    plain_margin = serializers.FloatField(min_value=0, default=1.0)
    slight_margin = serializers.FloatField(min_value=0, default=1.0)
    much_margin = serializers.FloatField(min_value=0, default=2.0)
    rank_step_margin = serializers.FloatField(min_value=0, default=1.0)
    rating_point_margin = serializers.FloatField(min_value=0, default=1.0)
    min_rating_gap = serializers.IntegerField(min_value=1, default=1)
    bradley_terry_l2 = serializers.FloatField(min_value=0, default=0.1)


class DeriveResultSerializer(serializers.Serializer):
    policy = serializers.CharField()
    judgments = serializers.IntegerField()
    pairs = serializers.IntegerField()
    ties = serializers.IntegerField()
    replaced = serializers.IntegerField()


class TaskCreationSerializer(serializers.Serializer):
    """Which of the project's outputs become annotation tasks (see
    feedback.services.tasks.create_tasks_from_completions)."""

    mode = serializers.ChoiceField(
        choices=JudgmentMode.choices,
        help_text="pairwise: a task per pair of a prompt's outputs; ranking or rating: a task "
        "with all of them (2 to 9).",
    )
    prompt_ids = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_empty=False,
        max_length=100_000,
        help_text="Default: every prompt of the project.",
    )
    model_version_ids = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_empty=False,
        max_length=100,
        help_text="Only these versions' outputs. Default: every output of each prompt.",
    )
    judgments_wanted = serializers.IntegerField(
        required=False, min_value=1, max_value=100, help_text="Default: the project's overlap."
    )


class TaskSerializer(serializers.ModelSerializer):
    completions = serializers.SerializerMethodField()

    class Meta:
        model = AnnotationTask
        fields = [
            "id",
            "prompt",
            "mode",
            "status",
            "judgments_wanted",
            "judgment_count",
            "is_gold",
            "alignment_round",
            "completions",
            "created_at",
        ]

    def get_completions(self, task: AnnotationTask) -> list[int]:
        """The completion ids in task order (each annotator is shown them shuffled)."""
        return [item.completion_id for item in task.items.all()]


class OpenedTasksSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    prompts = serializers.IntegerField(help_text="Prompts that got at least one new task.")
    already_there = serializers.IntegerField(
        help_text="Tasks not created: one of the same mode shows the same outputs already."
    )
    too_few_outputs = serializers.IntegerField(
        help_text="Prompts skipped: fewer than two outputs to compare."
    )


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]


class IssuedTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class ExportSnapshotSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    file = serializers.SerializerMethodField(
        help_text="Where exactly these bytes download again (complete snapshots)."
    )

    def get_file(self, snapshot: ExportSnapshot) -> str | None:
        if snapshot.status != ExportStatus.COMPLETE:
            return None
        url = reverse("api:snapshot-file", args=[snapshot.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    class Meta:
        model = ExportSnapshot
        fields = [
            "id",
            "project",
            "kind",
            "format",
            "filters",
            "row_count",
            "byte_size",
            "content_hash",
            "file",
            "status",
            "created_by",
            "created_at",
            "completed_at",
        ]


def id_field(**kwargs) -> serializers.IntegerField:
    """A row id: refused with a 400 when no row can have it."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class CommaSeparatedIntegers(serializers.ListField):
    """Ids as `?model_version=1,2` or `?model_version=1&model_version=2`."""

    child = id_field()

    def get_value(self, dictionary):
        if self.field_name not in dictionary:
            return serializers.empty
        return [
            part
            for value in dictionary.getlist(self.field_name)
            for part in value.split(",")
            if part
        ]


class CommaSeparatedStrings(CommaSeparatedIntegers):
    child = serializers.CharField()


class ExportQuerySerializer(serializers.Serializer):
    """Query parameters of the export endpoints (`format` picks jsonl or parquet)."""

    style = serializers.ChoiceField(choices=PAIR_STYLES, default="standard")
    margin = serializers.BooleanField(default=False)
    model_version = CommaSeparatedIntegers(required=False, default=list)
    round = id_field(required=False, allow_null=True, default=None)
    annotator = CommaSeparatedIntegers(required=False, default=list)
    judged_after = serializers.DateTimeField(required=False, allow_null=True, default=None)
    judged_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    min_agreement = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=1
    )
    policy = CommaSeparatedStrings(required=False, default=list)
    include_ties = serializers.BooleanField(default=False)
    up_to_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_ID
    )

    def filters(self) -> ExportFilters:
        data = self.validated_data
        return ExportFilters(
            model_version_ids=tuple(data["model_version"]),
            alignment_round_id=data["round"],
            annotator_ids=tuple(data["annotator"]),
            judged_after=data["judged_after"],
            judged_before=data["judged_before"],
            min_agreement=data["min_agreement"],
            policies=tuple(data["policy"]),
            include_ties=data["include_ties"],
            up_to_id=data["up_to_id"],
        )


class LeaderboardQuerySerializer(serializers.Serializer):
    style_control = serializers.BooleanField(default=False)


class RatingRowSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    model = serializers.CharField()
    games = serializers.IntegerField()
    wins = serializers.FloatField()
    bt_score = serializers.FloatField()
    bt_low = serializers.FloatField()
    bt_high = serializers.FloatField()
    elo = serializers.FloatField()
    rank = serializers.IntegerField(
        help_text="1 + the versions of its group whose interval lies wholly above this one's."
    )
    group = serializers.IntegerField(
        help_text="Versions joined by comparisons, directly or through others (1: the largest "
        "set). Ratings of different groups are not comparable."
    )
    style_score = serializers.FloatField(
        allow_null=True,
        help_text="Bradley-Terry rating with length and markdown held fixed (style_control only).",
    )


class LeaderboardSerializer(serializers.Serializer):
    comparisons = serializers.IntegerField()
    bootstrap_rounds = serializers.IntegerField()
    confidence = serializers.FloatField()
    regularised = serializers.BooleanField()
    rows = RatingRowSerializer(many=True)
    win_rates = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="win_rates[i][j]: share of row i's wins over column j (ties half), rows in leaderboard order.",
    )
    style_effects = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        allow_null=True,
        help_text="With style_control: each style feature's effect in log-odds per standard "
        "deviation of its difference between the two outputs (null where it never differed).",
    )


class AnnotatorStatsSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    annotator = serializers.CharField()
    judgments = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)
    consensus = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True)
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_judged = serializers.IntegerField()
    position_bias = serializers.FloatField(allow_null=True)
    is_outlier = serializers.BooleanField()


class AgreementPeriodSerializer(serializers.Serializer):
    period = serializers.CharField()
    agreement = serializers.FloatField(allow_null=True)
    tasks = serializers.IntegerField()


class AgreementSerializer(serializers.Serializer):
    judgments = serializers.IntegerField()
    overlapping_units = serializers.IntegerField()
    krippendorff_alpha = serializers.FloatField(
        allow_null=True, help_text="Ordinal, over verdicts on pairs of outputs from every kind."
    )
    pairwise_alpha = serializers.FloatField(
        allow_null=True, help_text="Nominal, over the choices made in pairwise tasks."
    )
    ranking_alpha = serializers.FloatField(
        allow_null=True, help_text="Ordinal, over the places given in ranking tasks."
    )
    percent_agreement = serializers.FloatField(allow_null=True)
    mean_kappa = serializers.FloatField(allow_null=True)
    annotators = AnnotatorStatsSerializer(many=True)
    over_time = AgreementPeriodSerializer(many=True)
