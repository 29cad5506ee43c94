"""/api/v1/ routes."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated

from feedback.api import views

app_name = "api"

urlpatterns = [
    path(
        "schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"
    ),
    path("docs/", views.ApiDocs.as_view(), name="docs"),
    path("tokens/", views.TokenList.as_view(), name="tokens"),
    path("tokens/<int:token_id>/", views.TokenDetail.as_view(), name="token"),
    path("projects/", views.ProjectList.as_view(), name="projects"),
    path("projects/<int:project_id>/", views.ProjectDetail.as_view(), name="project"),
    path("projects/<int:project_id>/members/", views.MemberList.as_view(), name="members"),
    path(
        "projects/<int:project_id>/members/<int:user_id>/",
        views.MemberDetail.as_view(),
        name="member",
    ),
    path(
        "projects/<int:project_id>/model-versions/",
        views.ModelVersionList.as_view(),
        name="model-versions",
    ),
    path(
        "projects/<int:project_id>/invitations/",
        views.InvitationList.as_view(),
        name="invitations",
    ),
    path(
        "projects/<int:project_id>/invitations/<int:invitation_id>/",
        views.InvitationDetail.as_view(),
        name="invitation",
    ),
    path("projects/<int:project_id>/prompts/", views.PromptList.as_view(), name="prompts"),
    path(
        "projects/<int:project_id>/completions/",
        views.CompletionList.as_view(),
        name="completions",
    ),
    path("projects/<int:project_id>/imports/", views.ImportList.as_view(), name="imports"),
    path(
        "projects/<int:project_id>/prompt-sets/", views.PromptSetList.as_view(), name="prompt-sets"
    ),
    path("projects/<int:project_id>/tasks/", views.ProjectTasks.as_view(), name="tasks"),
    path("projects/<int:project_id>/next-task/", views.NextTask.as_view(), name="next-task"),
    path("projects/<int:project_id>/undo/", views.UndoLastJudgment.as_view(), name="undo"),
    path(
        "projects/<int:project_id>/pairs/derive/", views.DerivePairs.as_view(), name="derive-pairs"
    ),
    path(
        "projects/<int:project_id>/exports/pairs/", views.ExportPairs.as_view(), name="export-pairs"
    ),
    path(
        "projects/<int:project_id>/exports/judgments/",
        views.ExportJudgments.as_view(),
        name="export-judgments",
    ),
    path(
        "projects/<int:project_id>/exports/ratings/",
        views.ExportRatings.as_view(),
        name="export-ratings",
    ),
    path("projects/<int:project_id>/leaderboard/", views.Leaderboard.as_view(), name="leaderboard"),
    path("projects/<int:project_id>/agreement/", views.Agreement.as_view(), name="agreement"),
    path("tasks/<int:task_id>/skip/", views.SkipTask.as_view(), name="skip-task"),
    path("judgments/", views.JudgmentList.as_view(), name="judgments"),
    path("exports/", views.SnapshotList.as_view(), name="snapshots"),
    path("exports/<int:snapshot_id>/", views.SnapshotDetail.as_view(), name="snapshot"),
]
