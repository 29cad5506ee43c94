"""Tasks and annotating through the API: making and listing tasks, leases, judgments, skips
and undo."""

from django.db.models import Prefetch, Q
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback.api import serializers as s
from feedback.api.permissions import REVIEWERS, IsProjectAdmin, IsProjectMember, IsProjectReviewer
from feedback.api.views.common import (
    IdFilter,
    NewestFirst,
    ProjectRows,
    ServiceErrorMixin,
    schema_only,
)
from feedback.models import (
    AnnotationTask,
    Judgment,
    Membership,
    TaskItem,
)
from feedback.models.projects import JudgmentMode
from feedback.services import (
    JudgmentInput,
    mark_gold,
    next_task_for,
    set_gold_answer,
    skip_task,
    submit_judgment,
    undo_last_judgment,
)
from feedback.services.tasks import create_tasks_from_completions, delete_untouched_tasks


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


class TaskGold(ServiceErrorMixin, APIView):
    """A gold task's known answer (reviewers). PUT decides the task and makes it gold in one
    step, for a task nobody has judged too: annotators who have not seen it are then served it
    now and then as a check, and their answers score their gold accuracy (see the agreement
    endpoint). DELETE makes it an ordinary task again; the checks already served stay checks."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        request=s.GoldAnswerSerializer,
        responses={200: s.GoldTaskSerializer, 400: s.ErrorSerializer, 404: s.ErrorSerializer},
    )
    def put(self, request, project_id: int, task_id: int):
        data = s.GoldAnswerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = data.validated_data
        task = set_gold_answer(
            reviewer_id=request.user.pk,
            project_id=project_id,
            task_id=task_id,
            judgment_id=answer["judgment"],
            choice=answer["choice"],
            ranking=answer["ranking"],
            note=answer["note"],
        )
        return Response(s.GoldTaskSerializer(task).data)

    @extend_schema(request=None, responses={200: s.GoldTaskSerializer, 404: s.ErrorSerializer})
    def delete(self, request, project_id: int, task_id: int):
        task = mark_gold(
            reviewer_id=request.user.pk, project_id=project_id, task_id=task_id, is_gold=False
        )
        return Response(s.GoldTaskSerializer(task).data)


class JudgmentFilter(filters.FilterSet):
    project = IdFilter(field_name="task__project_id")
    round = IdFilter(field_name="task__alignment_round_id")
    annotator = IdFilter(field_name="annotator_id")
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


class TaskFilter(filters.FilterSet):
    class Meta:
        model = AnnotationTask
        fields = ["mode", "status", "is_gold", "prompt", "alignment_round"]


class ProjectTasks(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
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

    def project_rows(self, project_id: int):
        return AnnotationTask.objects.filter(project_id=project_id).prefetch_related(
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
