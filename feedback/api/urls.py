"""/api/v1/ routes."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated

from feedback.api.views import annotating, docs, exports, imports, insights, projects, tokens

app_name = "api"

urlpatterns = [
    path(
        "schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"
    ),
    path("docs/", docs.ApiDocs.as_view(), name="docs"),
    path("tokens/", tokens.TokenList.as_view(), name="tokens"),
    path("tokens/<id:token_id>/", tokens.TokenDetail.as_view(), name="token"),
    path("projects/", projects.ProjectList.as_view(), name="projects"),
    path("projects/<id:project_id>/", projects.ProjectDetail.as_view(), name="project"),
    path("projects/<id:project_id>/members/", projects.MemberList.as_view(), name="members"),
    path(
        "projects/<id:project_id>/members/<id:user_id>/",
        projects.MemberDetail.as_view(),
        name="member",
    ),
    path(
        "projects/<id:project_id>/model-versions/",
        projects.ModelVersionList.as_view(),
        name="model-versions",
    ),
    path(
        "projects/<id:project_id>/model-versions/<id:version_id>/",
        projects.ModelVersionDetail.as_view(),
        name="model-version",
    ),
    path(
        "projects/<id:project_id>/invitations/",
        projects.InvitationList.as_view(),
        name="invitations",
    ),
    path(
        "projects/<id:project_id>/invitations/<id:invitation_id>/",
        projects.InvitationDetail.as_view(),
        name="invitation",
    ),
    path("projects/<id:project_id>/prompts/", projects.PromptList.as_view(), name="prompts"),
    path(
        "projects/<id:project_id>/completions/",
        projects.CompletionList.as_view(),
        name="completions",
    ),
    path("projects/<id:project_id>/imports/", imports.ImportList.as_view(), name="imports"),
    path(
        "projects/<id:project_id>/imports/<id:batch_id>/",
        imports.ImportDetail.as_view(),
        name="import",
    ),
    path(
        "projects/<id:project_id>/prompt-sets/",
        imports.PromptSetList.as_view(),
        name="prompt-sets",
    ),
    path("projects/<id:project_id>/tasks/", annotating.ProjectTasks.as_view(), name="tasks"),
    path(
        "projects/<id:project_id>/tasks/<id:task_id>/gold/",
        annotating.TaskGold.as_view(),
        name="task-gold",
    ),
    path("projects/<id:project_id>/next-task/", annotating.NextTask.as_view(), name="next-task"),
    path("projects/<id:project_id>/undo/", annotating.UndoLastJudgment.as_view(), name="undo"),
    path(
        "projects/<id:project_id>/pairs/derive/",
        exports.DerivePairs.as_view(),
        name="derive-pairs",
    ),
    path(
        "projects/<id:project_id>/exports/pairs/",
        exports.ExportPairs.as_view(),
        name="export-pairs",
    ),
    path(
        "projects/<id:project_id>/exports/judgments/",
        exports.ExportJudgments.as_view(),
        name="export-judgments",
    ),
    path(
        "projects/<id:project_id>/exports/ratings/",
        exports.ExportRatings.as_view(),
        name="export-ratings",
    ),
    path(
        "projects/<id:project_id>/exports/outputs/",
        exports.ExportOutputs.as_view(),
        name="export-outputs",
    ),
    path(
        "projects/<id:project_id>/leaderboard/", insights.Leaderboard.as_view(), name="leaderboard"
    ),
    path("projects/<id:project_id>/agreement/", insights.Agreement.as_view(), name="agreement"),
    path("tasks/<id:task_id>/skip/", annotating.SkipTask.as_view(), name="skip-task"),
    path("judgments/", annotating.JudgmentList.as_view(), name="judgments"),
    path("exports/", exports.SnapshotList.as_view(), name="snapshots"),
    path("exports/<id:snapshot_id>/", exports.SnapshotDetail.as_view(), name="snapshot"),
    path("exports/<id:snapshot_id>/file/", exports.SnapshotFile.as_view(), name="snapshot-file"),
]
