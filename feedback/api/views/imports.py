"""Importing JSONL, CSV and Parquet files, and prompt sets."""

import io
from collections.abc import Iterator

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from feedback import selectors
from feedback.api import serializers as s
from feedback.api.permissions import IsProjectAdmin, IsProjectReviewer
from feedback.api.views.common import NewestFirst, ProjectRows, ServiceErrorMixin
from feedback.errors import ServiceError
from feedback.import_files import (
    MAX_IMPORT_BYTES,
    BadRow,
    file_lines,
    uploaded_lines,
)
from feedback.models import (
    ImportBatch,
)
from feedback.services.exports import PARQUET_MEDIA_TYPE
from feedback.services.import_deletion import delete_import
from feedback.services.imports import FORMATS as IMPORT_FORMATS
from feedback.services.imports import import_jsonl
from feedback.services.projects import create_prompt_set


class JsonLinesParser(BaseParser):
    """Leaves a JSONL body unread: the import view streams its lines."""

    media_type = "application/jsonl"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class NdjsonParser(JsonLinesParser):
    media_type = "application/x-ndjson"


class ParquetParser(JsonLinesParser):
    media_type = PARQUET_MEDIA_TYPE


class CsvParser(JsonLinesParser):
    media_type = "text/csv"


def upload_lines(request) -> Iterator[bytes | BadRow]:
    """Lines of the uploaded file: multipart field `file`, or the raw body; gzip is unpacked,
    Parquet's and CSV's records read as lines."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_IMPORT_BYTES:
        raise ServiceError(f"The file is over {MAX_IMPORT_BYTES >> 20} MiB; split it.")
    if request.content_type.startswith("multipart/"):
        upload = request.FILES.get("file")
        if upload is None:
            raise ServiceError("Send the JSONL, CSV or Parquet file in the multipart field 'file'.")
        return uploaded_lines(upload)
    kind = "jsonl"
    if request.content_type.startswith(PARQUET_MEDIA_TYPE):
        kind = "parquet"
    elif request.content_type.startswith("text/csv"):
        kind = "csv"
    gzipped = request.META.get("HTTP_CONTENT_ENCODING", "") == "gzip"
    return file_lines(request.stream or io.BytesIO(), kind, gzipped=gzipped)


class ImportList(ProjectRows, ServiceErrorMixin, generics.ListCreateAPIView):
    """List a project's imports, or import a JSONL file (all lines valid, or nothing written)."""

    serializer_class = s.ImportBatchSerializer
    permission_classes = [IsProjectAdmin]
    pagination_class = NewestFirst
    parser_classes = [JsonLinesParser, NdjsonParser, ParquetParser, CsvParser, MultiPartParser]
    throttle_scope = "import"

    def project_rows(self, project_id: int):
        return ImportBatch.objects.filter(project_id=project_id).select_related("created_by")

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
            OpenApiParameter(
                "dry_run",
                bool,
                description="Check the file as an import would (every refusal, what it would "
                "create) and keep nothing: 200 instead of 201.",
            ),
        ],
        request={
            "application/jsonl": OpenApiTypes.BINARY,
            "text/csv": OpenApiTypes.BINARY,
            PARQUET_MEDIA_TYPE: OpenApiTypes.BINARY,
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses={
            201: s.ImportResultSerializer,
            200: s.ImportResultSerializer,
            400: s.ErrorSerializer,
        },
    )
    def post(self, request, project_id: int):
        dry_run = request.query_params.get("dry_run", "").lower() in ("1", "true", "yes")
        lines = upload_lines(request)  # first: it refuses a body too large before it is read
        upload = (
            request.FILES.get("file") if request.content_type.startswith("multipart/") else None
        )
        result = import_jsonl(
            project_id=project_id,
            user_id=request.user.pk,
            lines=lines,
            format=request.query_params.get("import_format", "auto"),
            source=request.query_params.get("source") or (upload.name if upload else ""),
            dry_run=dry_run,
        )
        return Response(
            s.ImportResultSerializer(result).data,
            status=status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED,
        )


class ImportDetail(ServiceErrorMixin, APIView):
    permission_classes = [IsProjectAdmin]

    @extend_schema(
        responses={200: s.DeletedImportSerializer, 404: s.ErrorSerializer, 409: s.ErrorSerializer}
    )
    def delete(self, request, project_id: int, batch_id: int):
        """Delete an import and what it wrote (outputs, pairs over them, battles, and prompts and
        model versions nothing else uses). 409 while tasks show its outputs: delete those
        first."""
        deleted = delete_import(project_id=project_id, batch_id=batch_id)
        return Response(s.DeletedImportSerializer(deleted).data)


class PromptSetList(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
    """A project's prompt sets (reviewers); POST makes one (admins) from `prompt_ids`, or from
    the project's prompts of one `import_batch` and `split`. Rounds sample from prompt sets."""

    serializer_class = s.PromptSetSerializer
    pagination_class = NewestFirst

    def get_permissions(self):
        role = IsProjectAdmin if self.request.method == "POST" else IsProjectReviewer
        return [role()]

    def project_rows(self, project_id: int):
        return selectors.prompt_sets_of(project_id)

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
