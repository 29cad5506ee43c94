"""Projects, their members and invitation links, model versions, prompts and outputs."""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback import selectors
from feedback.api import serializers as s
from feedback.api.permissions import IsProjectAdmin, IsProjectMember, IsProjectReviewer
from feedback.api.views.common import NewestFirst, ProjectRows, ServiceErrorMixin, schema_only
from feedback.models import (
    Completion,
    ModelVersion,
    Project,
    Prompt,
)
from feedback.services.invitations import create_invitation, revoke_invitation
from feedback.services.project_deletion import delete_project
from feedback.services.projects import (
    add_member_named,
    change_member_role,
    create_project,
    delete_model_version,
    remove_member,
    rename_model_version,
    update_project,
)


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
        project = create_project(**data.validated_data, admin_id=request.user.pk)
        return Response(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetail(ServiceErrorMixin, APIView):
    """One project you belong to: its settings and how many prompts, outputs and tasks it has.
    PATCH changes its settings (admins); what a change leaves out keeps its value. DELETE deletes
    the project and everything in it (admins), refused while a round or training job of it is
    under way."""

    def get_permissions(self):
        return [IsProjectMember() if self.request.method == "GET" else IsProjectAdmin()]

    @extend_schema(responses={200: s.ProjectDetailSerializer})
    def get(self, request, project_id: int):
        return self.detail(get_object_or_404(Project, pk=project_id))

    @extend_schema(
        request=s.ProjectSettingsSerializer,
        responses={200: s.ProjectDetailSerializer, 400: s.ErrorSerializer},
    )
    def patch(self, request, project_id: int):
        data = s.ProjectSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self.detail(update_project(project_id=project_id, **data.validated_data))

    @extend_schema(responses={200: s.DeletedProjectSerializer, 409: s.ErrorSerializer})
    def delete(self, request, project_id: int):
        deleted = delete_project(project_id=project_id)
        return Response(s.DeletedProjectSerializer(deleted).data)

    def detail(self, project: Project) -> Response:
        project.contents = selectors.project_contents(project.pk)
        return Response(s.ProjectDetailSerializer(project).data)


class MemberList(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
    """A project's members and their roles (reviewers); POST adds an account by username, or
    changes the role of one who is a member already (admins)."""

    serializer_class = s.MemberSerializer
    pagination_class = None  # a team, not a table

    def get_permissions(self):
        return [IsProjectAdmin() if self.request.method == "POST" else IsProjectReviewer()]

    def project_rows(self, project_id: int):
        return selectors.members_of(project_id)

    @extend_schema(
        request=s.MemberAdditionSerializer,
        responses={201: s.MemberSerializer, 400: s.ErrorSerializer, 404: s.ErrorSerializer},
    )
    def post(self, request, project_id: int):
        data = s.MemberAdditionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = add_member_named(project_id=project_id, **data.validated_data)
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


class ModelVersionList(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
    """A project's model versions, newest first."""

    serializer_class = s.ModelVersionSerializer
    permission_classes = [IsProjectMember]
    pagination_class = NewestFirst

    def project_rows(self, project_id: int):
        return ModelVersion.objects.filter(project_id=project_id)


class ModelVersionDetail(ServiceErrorMixin, APIView):
    permission_classes = [IsProjectAdmin]

    @extend_schema(
        request=s.VersionNameSerializer,
        responses={200: s.ModelVersionSerializer, 404: s.ErrorSerializer, 409: s.ErrorSerializer},
    )
    def patch(self, request, project_id: int, version_id: int):
        """Rename a model version (admins); its outputs and judgments stay with it."""
        data = s.VersionNameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = rename_model_version(
            project_id=project_id, version_id=version_id, name=data.validated_data["name"]
        )
        return Response(s.ModelVersionSerializer(version).data)

    @extend_schema(responses={204: None, 404: s.ErrorSerializer, 409: s.ErrorSerializer})
    def delete(self, request, project_id: int, version_id: int):
        """Delete a model version nothing uses (admins). 409, naming what, while outputs, child
        versions, rounds or training jobs use it."""
        delete_model_version(project_id=project_id, version_id=version_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PromptList(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
    """A project's prompts, newest first."""

    serializer_class = s.PromptSerializer
    permission_classes = [IsProjectReviewer]
    pagination_class = NewestFirst

    def project_rows(self, project_id: int):
        return Prompt.objects.filter(project_id=project_id)


class CompletionFilter(filters.FilterSet):
    class Meta:
        model = Completion
        fields = ["prompt", "model_version"]


class CompletionList(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
    """A project's outputs (completions), newest first; filter by prompt or model version."""

    serializer_class = s.CompletionSerializer
    filterset_class = CompletionFilter
    permission_classes = [IsProjectReviewer]
    pagination_class = NewestFirst

    def project_rows(self, project_id: int):
        return Completion.objects.filter(prompt__project_id=project_id)


class InvitationList(ProjectRows, ServiceErrorMixin, generics.ListAPIView):
    """The project's invitation links that still work (admins); POST makes one for annotators
    or reviewers. Whoever opens the link joins, making an account if they have none. The link
    is in the answer to the POST only: Arbiter keeps its hash."""

    serializer_class = s.InvitationSerializer
    permission_classes = [IsProjectAdmin]
    pagination_class = None

    def project_rows(self, project_id: int):
        return selectors.open_invitations_of(project_id)

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
