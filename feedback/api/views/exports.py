"""Deriving pairs and streaming exports (JSONL, Parquet), with their snapshots."""

from django.http import StreamingHttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, renderers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback.api import serializers as s
from feedback.api.file_responses import file_response
from feedback.api.permissions import REVIEWERS, IsProjectAdmin, IsProjectReviewer
from feedback.api.views.common import IdFilter, NewestFirst, ServiceErrorMixin, schema_only
from feedback.models import (
    ExportSnapshot,
    Membership,
)
from feedback.models.exports import ExportKind
from feedback.pairs import PairPolicy
from feedback.services.exports import (
    MEDIA_TYPES,
    PARQUET_MEDIA_TYPE,
    ExportRequest,
    check_export,
    download_name,
    export_to_file,
    snapshot_file_to_serve,
    start_export,
)
from feedback.services.pairs import derive_pairs


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


class JsonLinesRenderer(renderers.JSONRenderer):
    """Lets `?format=jsonl` pass content negotiation; errors still render as JSON."""

    media_type = "application/jsonl"
    format = "jsonl"


class ParquetRenderer(renderers.JSONRenderer):
    media_type = PARQUET_MEDIA_TYPE
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
    OpenApiParameter(
        "policy",
        str,
        description="Comma-separated pair policies ('import' for imported pairs). Needed when "
        "the project's pairs were derived under several policies: each makes its own pairs "
        "from the same judgments.",
    ),
    OpenApiParameter(
        "include_ties",
        bool,
        description="Also tie pairs; every row then has an is_tie column (a tie's chosen and "
        "rejected are in no particular order).",
    ),
    OpenApiParameter(
        "up_to_id", int, description="Ignore rows with a higher id (pins a snapshot)."
    ),
]


class Export(ServiceErrorMixin, APIView):
    """Stream pairs, judgments, ratings or outputs as JSONL or Parquet; records an ExportSnapshot whose id
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
        # A refusal, or a kept snapshot's record, is JSON whichever file was asked for: as
        # "Parquet", a client could not read it.
        if isinstance(response, Response):
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=EXPORT_PARAMETERS,
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY, 400: s.ErrorSerializer},
    )
    def get(self, request, project_id: int):
        stream = start_export(self.export_request(request, project_id), user_id=request.user.pk)
        # The stream itself, not its chunks: the response then closes it, whether read or not.
        response = StreamingHttpResponse(stream, content_type=stream.content_type)
        response["Content-Disposition"] = f'attachment; filename="{stream.filename}"'
        response["X-Export-Snapshot"] = str(stream.snapshot.pk)
        return response

    def head(self, request, project_id: int):
        """The GET's refusals and type, without exporting: a HEAD (a link checker, fsspec asking
        for a size) neither reads every row nor records a snapshot. Its length is unknown until
        the export has run: POST makes a snapshot whose file has one."""
        export = self.export_request(request, project_id)
        check_export(export)
        # Streamed, as the GET is: a plain empty response would be sent as "Content-Length: 0",
        # which fsspec takes for the file's size.
        return StreamingHttpResponse(iter(()), content_type=MEDIA_TYPES[export.format])

    @extend_schema(
        parameters=EXPORT_PARAMETERS,
        request=None,
        responses={201: s.ExportSnapshotSerializer, 400: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        """Export into a file the server keeps and answer with its snapshot, whose `file` URL
        serves exactly those bytes with their length, ranges and an ETag: what `datasets`,
        pandas or DuckDB read over HTTP, again and again, as one fixed version of the data."""
        snapshot, _ = export_to_file(
            self.export_request(request, project_id), user_id=request.user.pk
        )
        data = s.ExportSnapshotSerializer(snapshot, context={"request": request}).data
        return Response(data, status=201)

    def export_request(self, request, project_id: int) -> ExportRequest:
        query = s.ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return ExportRequest(
            project_id=project_id,
            kind=self.kind,
            format="parquet" if request.accepted_renderer.format == "parquet" else "jsonl",
            style=query.validated_data["style"],
            margin=query.validated_data["margin"],
            filters=query.filters(),
        )


class ExportPairs(Export):
    kind = ExportKind.PAIRS


class ExportJudgments(Export):
    kind = ExportKind.JUDGMENTS


class ExportRatings(Export):
    kind = ExportKind.RATINGS


class ExportOutputs(Export):
    """Stream the project's outputs as the import's `completions` lines (prompt, completion,
    model, generation_settings, token_count), or as Parquet with a chat prompt in `messages`;
    `model_version` and `up_to_id` narrow it. Records an ExportSnapshot like the other exports."""

    kind = ExportKind.OUTPUTS


def snapshots_for(user):
    """Export snapshots of projects the user reviews (staff: all)."""
    snapshots = ExportSnapshot.objects.select_related("created_by")
    if user.is_staff:
        return snapshots
    reviewed = Membership.objects.filter(user=user, role__in=REVIEWERS).values("project_id")
    return snapshots.filter(project_id__in=reviewed)


class SnapshotFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")

    class Meta:
        model = ExportSnapshot
        fields = ["project", "kind", "status"]  # `format` would be DRF's renderer override


class SnapshotList(ServiceErrorMixin, generics.ListAPIView):
    """Export snapshots of projects you review, newest first; filter by project, kind and
    status (`?project=1&kind=pairs&status=complete&page_size=1` is the latest one)."""

    serializer_class = s.ExportSnapshotSerializer
    filterset_class = SnapshotFilter
    pagination_class = NewestFirst

    def get_queryset(self):
        return (
            ExportSnapshot.objects.none() if schema_only(self) else snapshots_for(self.request.user)
        )


class FirstRenderer(BaseContentNegotiation):
    """Whatever the client accepts: the file goes out as it is, and a refusal as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SnapshotFile(ServiceErrorMixin, APIView):
    """Exactly the bytes of a complete snapshot, as often as asked: its stored copy, or the export
    run again from its pinned filters and checked against its hash (409 if the rows below its
    id ceiling have changed since). Sent with their length and the hash as ETag; byte ranges
    are served, so Parquet can be read remotely."""

    renderer_classes = [renderers.JSONRenderer]
    content_negotiation_class = FirstRenderer
    # No "export" scope: a file is read, not exported, and readers fetch a range at a time
    # (fsspec: one request per 5 MB block), so only the general rate holds them.

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 409: s.ErrorSerializer}
    )
    def get(self, request, snapshot_id: int):
        if not snapshots_for(request.user).filter(pk=snapshot_id).exists():
            raise NotFound(f"No export snapshot with id {snapshot_id} that you may read.")
        snapshot, path = snapshot_file_to_serve(snapshot_id)
        return file_response(
            request,
            path,
            content_type=MEDIA_TYPES[snapshot.format],
            filename=download_name(snapshot),
            etag=snapshot.content_hash,
        )


class SnapshotDetail(ServiceErrorMixin, generics.RetrieveAPIView):
    """One export snapshot: its filters, row count and content hash, for a training run to name."""

    serializer_class = s.ExportSnapshotSerializer
    lookup_url_kwarg = "snapshot_id"

    def get_queryset(self):
        return (
            ExportSnapshot.objects.none() if schema_only(self) else snapshots_for(self.request.user)
        )
