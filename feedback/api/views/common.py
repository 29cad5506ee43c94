"""What every API view shares: service refusals as HTTP answers, pagination, id filters."""

from django import forms
from django_filters import rest_framework as filters
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from feedback.errors import ServiceError
from feedback.ids import MAX_ID

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


class IdFilter(filters.NumberFilter):
    """A row id: whole, and refused with a 400 when no row can have it."""

    field_class = forms.IntegerField

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


class ServiceErrorMixin:
    """Turns a service's refusal into an HTTP answer with its message and details."""

    def handle_exception(self, exc):
        if isinstance(exc, ServiceError):
            return error_response(exc)
        return super().handle_exception(exc)


def schema_only(view) -> bool:
    """True while drf-spectacular inspects the view (no real request, user or URL kwargs)."""
    return getattr(view, "swagger_fake_view", False)


class ProjectRows:
    """For a list of one project's rows, which `project_rows(project_id)` gives. While
    drf-spectacular draws the schema there is no project (no URL kwargs): the list is empty."""

    def get_queryset(self):
        if schema_only(self):
            return self.get_serializer_class().Meta.model.objects.none()
        return self.project_rows(self.kwargs["project_id"])


class NewestFirst(CursorPagination):
    ordering = "-id"  # the primary key: indexed and immutable, as cursor pagination needs
    page_size_query_param = "page_size"
    max_page_size = 1000
