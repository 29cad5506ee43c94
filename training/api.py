"""REST endpoints for alignment rounds (/api/v1/rounds/: list, retrieve, launch, and the round's
actions) and training jobs (/api/v1/jobs/: list, retrieve, cancel, resume). Project admins (and
staff) only; every write goes through training.rounds."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from feedback.api.views.common import NewestFirst, ServiceErrorMixin
from feedback.ids import parse_id
from feedback.models import Role
from feedback.selectors import has_role
from training import rounds
from training.models import AlignmentRound, RoundMethod, TrainingJob


class JobSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingJob
        fields = ["id", "kind", "status", "progress", "error", "created_at", "finished_at"]


class RoundSerializer(serializers.ModelSerializer):
    judgments_collected = serializers.SerializerMethodField()
    jobs = JobSummarySerializer(many=True, read_only=True)

    class Meta:
        model = AlignmentRound
        fields = [
            "id",
            "project",
            "number",
            "policy",
            "prompt_set",
            "method",
            "hyperparameters",
            "samples_per_prompt",
            "judgments_wanted",
            "judgments_collected",
            "mix_parent_outputs",
            "state",
            "failed_state",
            "error",
            "snapshot",
            "reward_model",
            "result_version",
            "evaluation",
            "jobs",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_judgments_collected(self, round_: AlignmentRound) -> int:
        return rounds.judgments_collected(round_)


class LaunchRoundSerializer(serializers.Serializer):
    """What launching a round takes; omitted hyperparameters keep the engine's defaults."""

    project = serializers.IntegerField()
    policy = serializers.IntegerField()
    prompt_set = serializers.IntegerField()
    method = serializers.ChoiceField(choices=RoundMethod.choices)
    hyperparameters = serializers.DictField(required=False, default=dict)
    samples_per_prompt = serializers.IntegerField(min_value=2, max_value=9, default=2)
    judgments_wanted = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    mix_parent_outputs = serializers.BooleanField(default=False)


ACTION_SCHEMA = extend_schema(request=None, responses=RoundSerializer)


class AdministeredViewSet(
    ServiceErrorMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Rows of the projects the caller administers (staff: all), newest first; `?project=<id>`
    narrows them to one project. A service's refusal becomes its HTTP answer (ServiceErrorMixin)."""

    pagination_class = NewestFirst

    def rows(self):
        raise NotImplementedError

    def run_action(self, service, **kwargs) -> Response:
        """Apply `service` to the row in the URL; answer with the row as it is now."""
        result = service(self.get_object().pk, **kwargs)
        return Response(self.get_serializer(self.rows().get(pk=result.pk)).data)

    def get_queryset(self):
        queryset = self.rows()
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return queryset.none()
        user = self.request.user
        if not user.is_staff:
            queryset = queryset.filter(
                Q(project__memberships__user=user) & Q(project__memberships__role=Role.ADMIN)
            )
        project = self.request.query_params.get("project")
        if project is not None:
            queryset = queryset.filter(project_id=parse_id(project) or -1)
        return queryset


@extend_schema_view(
    list=extend_schema(
        description="Rounds of the projects you administer, newest first.",
        parameters=[OpenApiParameter("project", int, description="Only this project's rounds.")],
    ),
    retrieve=extend_schema(description="One round: its state, jobs and judgments collected."),
)
class RoundViewSet(AdministeredViewSet):
    """Rounds of the projects the caller administers. Filter with `?project=<id>`."""

    serializer_class = RoundSerializer

    def rows(self):
        return AlignmentRound.objects.prefetch_related("jobs")

    def get_serializer_class(self):
        return LaunchRoundSerializer if self.action == "create" else RoundSerializer

    @extend_schema(
        description="Launch a round: the policy samples the prompt set for annotation.",
        request=LaunchRoundSerializer,
        responses={201: RoundSerializer},
    )
    def create(self, request: Request) -> Response:
        given = LaunchRoundSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        if not has_role(request.user, data["project"], Role.ADMIN):
            raise PermissionDenied("Only admins of the project launch rounds.")
        round_ = rounds.launch_round(
            project_id=data["project"],
            policy_id=data["policy"],
            prompt_set_id=data["prompt_set"],
            method=data["method"],
            hyperparameters=data["hyperparameters"],
            samples_per_prompt=data["samples_per_prompt"],
            judgments_wanted=data.get("judgments_wanted"),
            mix_parent_outputs=data["mix_parent_outputs"],
            created_by_id=request.user.pk,
        )
        return Response(RoundSerializer(round_).data, status=status.HTTP_201_CREATED)

    @ACTION_SCHEMA
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        """Stop a running round; its queued or running job is cancelled."""
        return self.run_action(rounds.cancel_round)

    @ACTION_SCHEMA
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        """Take a failed or cancelled round up again from the step where it stopped."""
        return self.run_action(rounds.resume_round)

    @ACTION_SCHEMA
    @action(detail=True, methods=["post"], url_path="move-on")
    def move_on(self, request: Request, pk=None) -> Response:
        """Leave annotation now and train on the judgments collected so far."""
        return self.run_action(rounds.start_training, by_user_id=request.user.pk)

    @extend_schema(request=None, responses={201: RoundSerializer})
    @action(detail=True, methods=["post"], url_path="next")
    def next_round(self, request: Request, pk=None) -> Response:
        """Launch the following round from this finished round's new version."""
        new = rounds.next_round(self.get_object().pk, created_by_id=request.user.pk)
        return Response(RoundSerializer(new).data, status=status.HTTP_201_CREATED)


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "alignment_round",
            "model_version",
            "snapshot",
            "result_version",
            "config",
            "progress",
            "metrics_history",
            "log_tail",
            "artifacts",
            "error",
            "cancel_requested",
            "attempts",
            "heartbeat_at",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


JOB_ACTION_SCHEMA = extend_schema(request=None, responses=JobSerializer)


@extend_schema_view(
    list=extend_schema(
        description="Training jobs of the projects you administer, newest first.",
        parameters=[OpenApiParameter("project", int, description="Only this project's jobs.")],
    ),
    retrieve=extend_schema(
        description="One job: status, progress, metrics history, log tail and artifacts."
    ),
)
class JobViewSet(AdministeredViewSet):
    """Training jobs of the projects the caller administers. Filter with `?project=<id>`."""

    serializer_class = JobSerializer

    def rows(self):
        return TrainingJob.objects.all()

    @JOB_ACTION_SCHEMA
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        """Stop the job: a queued one now, a running one at its next step. A job of a running
        round cancels the round."""
        return self.run_action(rounds.cancel_job)

    @JOB_ACTION_SCHEMA
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        """Queue a failed or cancelled job again from its newest checkpoint (a round's latest
        job resumes its round)."""
        return self.run_action(rounds.resume_job)
