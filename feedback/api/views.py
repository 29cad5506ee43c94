"""API views: parse input, call one service or selector, render. Rules live in the services."""

import functools
import io
import re
from collections.abc import Iterator

from django.db.models import Prefetch, Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, renderers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from feedback import insights, selectors
from feedback.api import serializers as s
from feedback.api.permissions import REVIEWERS, IsProjectAdmin, IsProjectMember, IsProjectReviewer
from feedback.errors import ServiceError
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
    Project,
    Prompt,
    PromptSet,
    TaskItem,
)
from feedback.models.exports import ExportKind
from feedback.models.projects import JudgmentMode
from feedback.pairs import PairPolicy
from feedback.services import (
    JudgmentInput,
    next_task_for,
    skip_task,
    submit_judgment,
    undo_last_judgment,
)
from feedback.services.exports import ExportRequest, start_export
from feedback.services.imports import FORMATS as IMPORT_FORMATS
from feedback.services.imports import MAX_IMPORT_BYTES, file_lines, import_jsonl
from feedback.services.invitations import create_invitation, revoke_invitation
from feedback.services.pairs import derive_pairs
from feedback.services.projects import (
    add_member,
    change_member_role,
    create_project,
    create_prompt_set,
    remove_member,
    update_project,
)
from feedback.services.tasks import create_tasks_from_completions, delete_untouched_tasks
from feedback.services.tokens import issue_token, revoke_token

ERROR_STATUS = {
    "invalid": status.HTTP_400_BAD_REQUEST,
    "not_found": status.HTTP_404_NOT_FOUND,
    "forbidden": status.HTTP_403_FORBIDDEN,
    "conflict": status.HTTP_409_CONFLICT,
}


def error_response(error: ServiceError) -> Response:
    body = {"detail": error.message}
    if error.details:
        body["details"] = error.details
    return Response(body, status=ERROR_STATUS.get(error.code, status.HTTP_400_BAD_REQUEST))


class ServiceErrorMixin:
    """Turns a service's refusal into an HTTP answer with its message and details."""

    def handle_exception(self, exc):
        if isinstance(exc, ServiceError):
            return error_response(exc)
        return super().handle_exception(exc)


def schema_only(view) -> bool:
    """True while drf-spectacular inspects the view (no real request, user or URL kwargs)."""
    return getattr(view, "swagger_fake_view", False)


class NewestFirst(CursorPagination):
    ordering = "-id"  # the primary key: indexed and immutable, as cursor pagination needs
    page_size_query_param = "page_size"
    max_page_size = 1000


# --- projects --------------------------------------------------------------------------------


class ProjectList(ServiceErrorMixin, generics.ListAPIView):
    """Projects you belong to (staff: all); POST starts one (staff), with you as its admin."""

    serializer_class = s.ProjectSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        if schema_only(self):
            return Project.objects.none()
        return selectors.projects_for(self.request.user)

    @extend_schema(
        request=s.ProjectCreationSerializer,
        responses={201: s.ProjectSerializer, 400: s.ErrorSerializer, 409: s.ErrorSerializer},
    )
    def post(self, request):
        if not request.user.is_staff:
            raise PermissionDenied("Only site staff start projects.")
        data = s.ProjectCreationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        project = create_project(
            name=fields["name"],
            guidelines=fields.get("guidelines", ""),
            modes=tuple(fields.get("modes", ("pairwise",))),
            overlap=fields.get("overlap", 1),
            admin_id=request.user.pk,
        )
        return Response(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetail(ServiceErrorMixin, APIView):
    """One project you belong to: its settings and how many prompts, outputs and tasks it has.
    PATCH changes its settings (admins); what a change leaves out keeps its value."""

    def get_permissions(self):
        return [IsProjectAdmin() if self.request.method == "PATCH" else IsProjectMember()]

    @extend_schema(responses={200: s.ProjectDetailSerializer})
    def get(self, request, project_id: int):
        return self.detail(project_id)

    @extend_schema(
        request=s.ProjectSettingsSerializer,
        responses={200: s.ProjectDetailSerializer, 400: s.ErrorSerializer},
    )
    def patch(self, request, project_id: int):
        data = s.ProjectSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        current = get_object_or_404(Project, pk=project_id)
        fields = data.validated_data
        update_project(
            project_id=project_id,
            guidelines=fields.get("guidelines", current.guidelines),
            modes=tuple(fields.get("modes", current.enabled_modes)),
            overlap=fields.get("overlap", current.overlap),
        )
        return self.detail(project_id)

    def detail(self, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        project.contents = selectors.project_contents(project_id)
        return Response(s.ProjectDetailSerializer(project).data)


class MemberList(ServiceErrorMixin, generics.ListAPIView):
    """A project's members and their roles (reviewers); POST adds an account by username, or
    changes the role of one who is a member already (admins)."""

    serializer_class = s.MemberSerializer
    pagination_class = None  # a team, not a table

    def get_permissions(self):
        return [IsProjectAdmin() if self.request.method == "POST" else IsProjectReviewer()]

    def get_queryset(self):
        if schema_only(self):
            return Membership.objects.none()
        return selectors.members_of(self.kwargs["project_id"])

    @extend_schema(
        request=s.MemberAdditionSerializer,
        responses={201: s.MemberSerializer, 400: s.ErrorSerializer, 404: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        data = s.MemberAdditionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.active_user_named(data.validated_data["username"])
        if user is None:
            raise ServiceError(
                f"No active account is called {data.validated_data['username']!r}.",
                code="not_found",
            )
        membership = add_member(
            project_id=project_id, user_id=user.pk, role=data.validated_data["role"]
        )
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(ServiceErrorMixin, APIView):
    permission_classes = [IsProjectAdmin]

    @extend_schema(
        request=s.RoleSerializer,
        responses={200: s.MemberSerializer, 404: s.ErrorSerializer, 409: s.ErrorSerializer},
    )
    def patch(self, request, project_id: int, user_id: int):
        """Change a member's role (admins). A project keeps at least one admin."""
        data = s.RoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = change_member_role(
            project_id=project_id, user_id=user_id, role=data.validated_data["role"]
        )
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(responses={204: None, 404: s.ErrorSerializer, 409: s.ErrorSerializer})
    def delete(self, request, project_id: int, user_id: int):
        """Remove a member (admins): the tasks leased to them go back to the queue, their
        judgments stay. A project keeps at least one admin."""
        remove_member(project_id=project_id, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelVersionList(ServiceErrorMixin, generics.ListAPIView):
    """A project's model versions, newest first."""

    serializer_class = s.ModelVersionSerializer
    permission_classes = [IsProjectMember]
    pagination_class = NewestFirst

    def get_queryset(self):
        if schema_only(self):
            return ModelVersion.objects.none()
        return ModelVersion.objects.filter(project_id=self.kwargs["project_id"])


class PromptList(ServiceErrorMixin, generics.ListAPIView):
    """A project's prompts, newest first."""

    serializer_class = s.PromptSerializer
    permission_classes = [IsProjectReviewer]
    pagination_class = NewestFirst

    def get_queryset(self):
        if schema_only(self):
            return Prompt.objects.none()
        return Prompt.objects.filter(project_id=self.kwargs["project_id"])


class CompletionFilter(filters.FilterSet):
    class Meta:
        model = Completion
        fields = ["prompt", "model_version"]


class CompletionList(ServiceErrorMixin, generics.ListAPIView):
    """A project's outputs (completions), newest first; filter by prompt or model version."""

    serializer_class = s.CompletionSerializer
    filterset_class = CompletionFilter
    permission_classes = [IsProjectReviewer]
    pagination_class = NewestFirst

    def get_queryset(self):
        if schema_only(self):
            return Completion.objects.none()
        return Completion.objects.filter(prompt__project_id=self.kwargs["project_id"])


class InvitationList(ServiceErrorMixin, generics.ListAPIView):
    """The project's invitation links that still work (admins); POST makes one for annotators
    or reviewers. Whoever opens the link joins, making an account if they have none. The link
    is in the answer to the POST only: Arbiter keeps its hash."""

    serializer_class = s.InvitationSerializer
    permission_classes = [IsProjectAdmin]
    pagination_class = None

    def get_queryset(self):
        if schema_only(self):
            return Invitation.objects.none()
        return selectors.open_invitations_of(self.kwargs["project_id"])

    @extend_schema(
        request=s.InvitationCreationSerializer,
        responses={201: s.IssuedInvitationSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        data = s.InvitationCreationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = create_invitation(
            project_id=project_id, created_by_id=request.user.pk, **data.validated_data
        )
        issued.invitation.link = request.build_absolute_uri(
            reverse("annotations:join", args=[issued.key])
        )
        return Response(
            s.IssuedInvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED
        )


class InvitationDetail(ServiceErrorMixin, APIView):
    permission_classes = [IsProjectAdmin]

    @extend_schema(responses={204: None, 404: s.ErrorSerializer})
    def delete(self, request, project_id: int, invitation_id: int):
        """Revoke the link: nobody joins with it from now on."""
        revoke_invitation(project_id=project_id, invitation_id=invitation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- imports ---------------------------------------------------------------------------------


class JsonLinesParser(BaseParser):
    """Leaves a JSONL body unread: the import view streams its lines."""

    media_type = "application/jsonl"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class NdjsonParser(JsonLinesParser):
    media_type = "application/x-ndjson"


def upload_lines(request) -> Iterator[bytes]:
    """Lines of the uploaded file: multipart field `file`, or the raw body; gzip is unpacked."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_IMPORT_BYTES:
        raise ServiceError(f"The file is over {MAX_IMPORT_BYTES >> 20} MiB; split it.")
    if request.content_type.startswith("multipart/"):
        upload = request.FILES.get("file")
        if upload is None:
            raise ServiceError("Send the JSONL file in the multipart field 'file'.")
        return file_lines(upload.file, gzipped=upload.name.endswith(".gz"))
    stream = request.stream or io.BytesIO()
    return file_lines(stream, gzipped=request.META.get("HTTP_CONTENT_ENCODING", "") == "gzip")


class ImportList(ServiceErrorMixin, generics.ListCreateAPIView):
    """List a project's imports, or import a JSONL file (all lines valid, or nothing written)."""

    serializer_class = s.ImportBatchSerializer
    permission_classes = [IsProjectAdmin]
    pagination_class = NewestFirst
    parser_classes = [JsonLinesParser, NdjsonParser, MultiPartParser]
    throttle_scope = "import"

    def get_queryset(self):
        if schema_only(self):
            return ImportBatch.objects.none()
        return ImportBatch.objects.filter(project_id=self.kwargs["project_id"]).select_related(
            "created_by"
        )

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            return throttles
        return [t for t in throttles if not isinstance(t, ScopedRateThrottle)]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "import_format",
                str,
                enum=["auto", *IMPORT_FORMATS],
                description="Default: auto (from the first line's keys).",
            ),
            OpenApiParameter("source", str, description="A note on where the file came from."),
        ],
        request={
            "application/jsonl": OpenApiTypes.BINARY,
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses={201: s.ImportResultSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        upload = (
            request.FILES.get("file") if request.content_type.startswith("multipart/") else None
        )
        result = import_jsonl(
            project_id=project_id,
            user_id=request.user.pk,
            lines=upload_lines(request),
            format=request.query_params.get("import_format", "auto"),
            source=request.query_params.get("source") or (upload.name if upload else ""),
        )
        return Response(s.ImportResultSerializer(result).data, status=status.HTTP_201_CREATED)


class PromptSetList(ServiceErrorMixin, generics.ListAPIView):
    """A project's prompt sets (reviewers); POST makes one (admins) from `prompt_ids`, or from
    the project's prompts of one `import_batch` and `split`. Rounds sample from prompt sets."""

    serializer_class = s.PromptSetSerializer
    pagination_class = NewestFirst

    def get_permissions(self):
        role = IsProjectAdmin if self.request.method == "POST" else IsProjectReviewer
        return [role()]

    def get_queryset(self):
        if schema_only(self):
            return PromptSet.objects.none()
        return selectors.prompt_sets_of(self.kwargs["project_id"])

    @extend_schema(
        request=s.PromptSetCreationSerializer,
        responses={201: s.PromptSetSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        data = s.PromptSetCreationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        prompt_set = create_prompt_set(
            project_id=project_id,
            name=fields["name"],
            prompt_ids=fields.get("prompt_ids"),
            import_batch_id=fields.get("import_batch"),
            split=fields["split"],
        )
        created = selectors.prompt_sets_of(project_id).get(pk=prompt_set.pk)
        return Response(s.PromptSetSerializer(created).data, status=status.HTTP_201_CREATED)


# --- annotating through the API --------------------------------------------------------------


class NextTask(ServiceErrorMixin, APIView):
    """Lease the next task in a project (or get your live lease). 204 when nothing is left."""

    permission_classes = [IsProjectMember]

    @extend_schema(request=None, responses={200: s.LeaseSerializer, 204: None})
    def post(self, request, project_id: int):
        assignment = next_task_for(annotator_id=request.user.pk, project_id=project_id)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.LeaseSerializer(assignment).data)


class UndoLastJudgment(ServiceErrorMixin, APIView):
    """Take back your newest judgment in the project and get its task leased to you again (same
    order), to judge anew; the lease you held meanwhile goes back to the queue. 409 once a
    reviewer has decided the task or pairs were derived from the judgment."""

    permission_classes = [IsProjectMember]

    @extend_schema(request=None, responses={200: s.LeaseSerializer, 404: s.ErrorSerializer})
    def post(self, request, project_id: int):
        undo_last_judgment(annotator_id=request.user.pk, project_id=project_id)
        assignment = next_task_for(annotator_id=request.user.pk, project_id=project_id)
        return Response(s.LeaseSerializer(assignment).data)


class SkipTask(ServiceErrorMixin, APIView):
    """Give a leased task back."""

    @extend_schema(
        request=s.SkipSerializer, responses={200: OpenApiResponse(description="Skipped.")}
    )
    def post(self, request, task_id: int):
        data = s.SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        skip_task(annotator_id=request.user.pk, task_id=task_id, **data.validated_data)
        return Response({"detail": "Skipped."})


class JudgmentFilter(filters.FilterSet):
    project = filters.NumberFilter(field_name="task__project_id")
    round = filters.NumberFilter(field_name="task__alignment_round_id")
    annotator = filters.NumberFilter(field_name="annotator_id")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Judgment
        fields = [
            "project",
            "task",
            "round",
            "annotator",
            "kind",
            "choice",
            "created_after",
            "created_before",
        ]


class JudgmentList(ServiceErrorMixin, generics.ListCreateAPIView):
    """Your judgments, plus every judgment in projects you review; POST submits one."""

    serializer_class = s.JudgmentSerializer
    filterset_class = JudgmentFilter
    pagination_class = NewestFirst

    def get_queryset(self):
        user = self.request.user
        judgments = Judgment.objects.select_related("annotator", "task")
        if schema_only(self):
            return judgments.none()
        if user.is_staff:
            return judgments
        reviewed = Membership.objects.filter(user=user, role__in=REVIEWERS).values("project_id")
        return judgments.filter(Q(annotator=user) | Q(task__project_id__in=reviewed))

    @extend_schema(
        request=s.JudgmentInputSerializer,
        responses={201: s.JudgmentSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request):
        data = s.JudgmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        task_id = values.pop("task")
        judgment = submit_judgment(
            annotator_id=request.user.pk, task_id=task_id, data=JudgmentInput(**values)
        )
        return Response(s.JudgmentSerializer(judgment).data, status=status.HTTP_201_CREATED)


class DerivePairs(ServiceErrorMixin, APIView):
    """(Re)derive the project's preference pairs from its judgments under a pair policy."""

    permission_classes = [IsProjectAdmin]

    @extend_schema(
        request=s.PairPolicySerializer,
        responses={200: s.DeriveResultSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        data = s.PairPolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = derive_pairs(project_id=project_id, policy=PairPolicy(**data.validated_data))
        return Response(s.DeriveResultSerializer(result.as_json()).data)


class TaskFilter(filters.FilterSet):
    class Meta:
        model = AnnotationTask
        fields = ["mode", "status", "is_gold", "prompt", "alignment_round"]


class ProjectTasks(ServiceErrorMixin, generics.ListAPIView):
    """The project's annotation tasks, newest first, with how many judgments each has of those
    it wants (reviewers). POST turns the project's outputs (imported or generated) into tasks
    (admins): for each prompt, a pairwise task per pair of its outputs, or one ranking or rating
    task with all of them. Outputs already shown together by a task of that mode are skipped,
    so calling it again after importing more outputs creates only the new tasks. All or
    nothing."""

    serializer_class = s.TaskSerializer
    filterset_class = TaskFilter
    pagination_class = NewestFirst

    def get_permissions(self):
        return [IsProjectReviewer() if self.request.method == "GET" else IsProjectAdmin()]

    def get_queryset(self):
        if schema_only(self):
            return AnnotationTask.objects.none()
        return AnnotationTask.objects.filter(project_id=self.kwargs["project_id"]).prefetch_related(
            Prefetch("items", queryset=TaskItem.objects.order_by("position"))
        )

    @extend_schema(
        request=s.TaskCreationSerializer,
        responses={201: s.OpenedTasksSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        data = s.TaskCreationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = create_tasks_from_completions(project_id=project_id, **data.validated_data)
        return Response(
            s.OpenedTasksSerializer(result.as_json()).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("mode", str, enum=JudgmentMode.values, description="Default: all.")
        ],
        responses={200: s.DeletedTasksSerializer, 400: s.ErrorSerializer},
    )
    def delete(self, request, project_id: int):
        """Delete the open tasks nobody has touched (no judgment, skip or flag; not gold, not in
        a round): tasks made by mistake."""
        deleted = delete_untouched_tasks(
            project_id=project_id, mode=request.query_params.get("mode") or None
        )
        return Response({"deleted": deleted})


# --- exports ---------------------------------------------------------------------------------


class JsonLinesRenderer(renderers.JSONRenderer):
    """Lets `?format=jsonl` pass content negotiation; errors still render as JSON."""

    media_type = "application/jsonl"
    format = "jsonl"


class ParquetRenderer(renderers.JSONRenderer):
    media_type = "application/vnd.apache.parquet"
    format = "parquet"


EXPORT_FORMATS = ("jsonl", "parquet")
EXPORT_PARAMETERS = [
    OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), description="Default: jsonl."),
    OpenApiParameter(
        "style", str, enum=["standard", "conversational", "hh"], description="Pairs only."
    ),
    OpenApiParameter("margin", bool, description="Pairs only: add a margin column."),
    OpenApiParameter("model_version", str, description="Comma-separated model version ids."),
    OpenApiParameter("round", int, description="Alignment round id."),
    OpenApiParameter("annotator", str, description="Comma-separated annotator user ids."),
    OpenApiParameter("judged_after", OpenApiTypes.DATETIME),
    OpenApiParameter("judged_before", OpenApiTypes.DATETIME),
    OpenApiParameter(
        "min_agreement",
        float,
        description="Pairs only: share of the task's judgments backing the pair.",
    ),
    OpenApiParameter("policy", str, description="Comma-separated pair policies."),
    OpenApiParameter("include_ties", bool),
    OpenApiParameter(
        "up_to_id", int, description="Ignore rows with a higher id (pins a snapshot)."
    ),
]


class Export(ServiceErrorMixin, APIView):
    """Stream pairs, judgments or ratings as JSONL or Parquet; records an ExportSnapshot whose id
    comes back in the X-Export-Snapshot header (hash and row count once the stream ends)."""

    permission_classes = [IsProjectReviewer]
    renderer_classes = [JsonLinesRenderer, ParquetRenderer, renderers.JSONRenderer]
    throttle_scope = "export"
    kind = ExportKind.PAIRS

    def perform_content_negotiation(self, request, force=False):
        # DRF answers a `format` no renderer has with a bare 404; name the ones there are.
        wanted = request.query_params.get("format")
        known = {renderer.format for renderer in self.renderer_classes}  # "json" gives JSONL too
        if not force and wanted is not None and wanted not in known:
            raise ValidationError(
                {"format": [f"Unknown format {wanted!r}; use {' or '.join(EXPORT_FORMATS)}."]}
            )
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request, response, *args, **kwargs):
        # A refusal is JSON whichever file was asked for: as "Parquet", a client cannot read it.
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=EXPORT_PARAMETERS,
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY, 400: s.ErrorSerializer},
    )
    def get(self, request, project_id: int):
        query = s.ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        file_format = request.accepted_renderer.format
        stream = start_export(
            ExportRequest(
                project_id=project_id,
                kind=self.kind,
                format="parquet" if file_format == "parquet" else "jsonl",
                style=query.validated_data["style"],
                margin=query.validated_data["margin"],
                filters=query.filters(),
            ),
            user_id=request.user.pk,
        )
        response = StreamingHttpResponse(stream.chunks(), content_type=stream.content_type)
        response["Content-Disposition"] = f'attachment; filename="{stream.filename}"'
        response["X-Export-Snapshot"] = str(stream.snapshot.pk)
        return response


class ExportPairs(Export):
    kind = ExportKind.PAIRS


class ExportJudgments(Export):
    kind = ExportKind.JUDGMENTS


class ExportRatings(Export):
    kind = ExportKind.RATINGS


def snapshots_for(user):
    """Export snapshots of projects the user reviews (staff: all)."""
    snapshots = ExportSnapshot.objects.select_related("created_by")
    if user.is_staff:
        return snapshots
    reviewed = Membership.objects.filter(user=user, role__in=REVIEWERS).values("project_id")
    return snapshots.filter(project_id__in=reviewed)


class SnapshotList(ServiceErrorMixin, generics.ListAPIView):
    """Export snapshots of projects you review."""

    serializer_class = s.ExportSnapshotSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return (
            ExportSnapshot.objects.none() if schema_only(self) else snapshots_for(self.request.user)
        )


class SnapshotDetail(ServiceErrorMixin, generics.RetrieveAPIView):
    """One export snapshot: its filters, row count and content hash, for a training run to name."""

    serializer_class = s.ExportSnapshotSerializer
    lookup_url_kwarg = "snapshot_id"

    def get_queryset(self):
        return (
            ExportSnapshot.objects.none() if schema_only(self) else snapshots_for(self.request.user)
        )


# --- insights --------------------------------------------------------------------------------


class Leaderboard(ServiceErrorMixin, APIView):
    """Model versions ranked by Bradley-Terry with bootstrap intervals, and online Elo."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "style_control",
                bool,
                description="Also rate each version with length and markdown held fixed.",
            )
        ],
        responses={200: s.LeaderboardSerializer},
    )
    def get(self, request, project_id: int):
        query = s.LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        board = insights.leaderboard(
            project_id, style_control=query.validated_data["style_control"]
        )
        return Response(s.LeaderboardSerializer(board.as_json()).data)


class Agreement(ServiceErrorMixin, APIView):
    """Inter-annotator agreement and per-annotator quality figures."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(responses={200: s.AgreementSerializer})
    def get(self, request, project_id: int):
        report = insights.agreement_report(project_id)
        return Response(s.AgreementSerializer(report.as_json()).data)


# --- tokens ----------------------------------------------------------------------------------


class TokenList(ServiceErrorMixin, generics.ListCreateAPIView):
    """Your API tokens. POST creates one and returns its key once."""

    serializer_class = s.ApiTokenSerializer
    pagination_class = NewestFirst
    parser_classes = [JSONParser]

    def get_queryset(self):
        if schema_only(self):
            return ApiToken.objects.none()
        return self.request.user.api_tokens.all()

    @extend_schema(request=s.ApiTokenSerializer, responses={201: s.IssuedTokenSerializer})
    def post(self, request):
        data = s.ApiTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = issue_token(user_id=request.user.pk, name=data.validated_data["name"])
        body = {**s.ApiTokenSerializer(issued.token).data, "key": issued.key}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetail(ServiceErrorMixin, generics.RetrieveDestroyAPIView):
    """DELETE revokes the token (it stays listed, with revoked_at set)."""

    serializer_class = s.ApiTokenSerializer
    lookup_url_kwarg = "token_id"

    def get_queryset(self):
        if schema_only(self):
            return ApiToken.objects.none()
        return self.request.user.api_tokens.all()

    def destroy(self, request, token_id: int):
        revoke_token(user_id=request.user.pk, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- docs ------------------------------------------------------------------------------------


# The reference's sections, by an endpoint's resource: the first word of its path after
# /api/v1/, or after /api/v1/projects/{project_id}/.
API_SECTIONS = {
    "Projects and members": {"projects", "members", "invitations"},
    "Data in": {"imports", "prompts", "completions", "model-versions", "prompt-sets"},
    "Tasks and judging": {"tasks", "next-task", "undo", "judgments"},
    "Data out": {"pairs", "exports", "leaderboard", "agreement"},
    "Training": {"rounds", "jobs"},
    "Tokens": {"tokens"},
}


def api_section(path: str) -> str:
    words = [part for part in path.split("/")[3:] if part and not part.startswith("{")]
    resource = words[1] if words[0] == "projects" and len(words) > 1 else words[0]
    return next((name for name, found in API_SECTIONS.items() if resource in found), "Other")


def field_type(spec: dict, components: dict) -> str:
    """A schema property in a few words: its type, or the values an enum takes."""
    if "$ref" in spec or "allOf" in spec:
        ref = spec.get("$ref") or spec["allOf"][0]["$ref"]
        target = components[ref.rsplit("/", 1)[-1]]
        return " | ".join(map(str, target["enum"])) if "enum" in target else target.get("type", "")
    if spec.get("type") == "array":
        return f"list of {field_type(spec.get('items', {}), components)}"
    return spec.get("type", "")


def body_fields(operation: dict, components: dict) -> list[dict]:
    """The writable fields of an operation's JSON body, from its request schema."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref")
    if ref is None:
        return []
    schema = components[ref.rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": field_type(spec, components),
            "required": name in required,
            "description": spec.get("description", ""),
        }
        for name, spec in schema.get("properties", {}).items()
        if not spec.get("readOnly")
    ]


def unwrapped(text: str) -> str:
    """A docstring's paragraphs with their lines joined: it was wrapped for the source file."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text.strip())


@functools.cache
def documented_operations() -> tuple[dict, dict[str, list[dict]]]:
    """The OpenAPI schema and its operations by section, generated once per process (they only
    change with the code)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    sections: dict[str, list[dict]] = {name: [] for name in [*API_SECTIONS, "Other"]}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            sections[api_section(path)].append(
                {
                    "anchor": re.sub(r"[^a-z0-9_]+", "-", f"{method} {path}").strip("-"),
                    "path": path,
                    "method": method.upper(),
                    "summary": unwrapped(operation.get("description") or ""),
                    "parameters": operation.get("parameters", []),
                    "fields": body_fields(operation, components),
                    "request": sorted(operation.get("requestBody", {}).get("content", {})),
                    "responses": sorted(operation.get("responses", {})),
                }
            )
    return schema, {name: ops for name, ops in sections.items() if ops}


class ApiDocs(APIView):
    """A readable, offline page generated from the OpenAPI schema (no CDN assets)."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [renderers.TemplateHTMLRenderer]

    @extend_schema(exclude=True)
    def get(self, request):
        schema, sections = documented_operations()
        return render(request, "feedback/api_docs.html", {"schema": schema, "sections": sections})
