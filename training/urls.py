"""Training pages (mounted at /training/), the rounds API (`api_urlpatterns`, at /api/v1/rounds/)
and the jobs API (`jobs_api_urlpatterns`, at /api/v1/jobs/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from training import api, views

app_name = "training"

urlpatterns = [
    path("", views.index, name="index"),
    path("projects/<id:project_id>/rounds/", views.round_list, name="round_list"),
    path("projects/<id:project_id>/rounds/new/", views.launch, name="launch"),
    path(
        "projects/<id:project_id>/rounds/new/hyperparameters/",
        views.launch_hyperparameters,
        name="launch_hyperparameters",
    ),
    path("rounds/<id:round_id>/", views.round_detail, name="round_detail"),
    path("rounds/<id:round_id>/live/", views.round_live, name="round_live"),
    path("rounds/<id:round_id>/<slug:action>/", views.round_action, name="round_action"),
    path("projects/<id:project_id>/models/", views.registry, name="registry"),
    path(
        "projects/<id:project_id>/models/<id:version_id>/rename/",
        views.rename_version,
        name="rename_version",
    ),
    path(
        "projects/<id:project_id>/models/<id:version_id>/delete/",
        views.delete_version,
        name="delete_version",
    ),
    path("models/<id:version_id>/adapter.zip", views.adapter_download, name="adapter_download"),
    path("projects/<id:project_id>/compare/", views.compare, name="compare"),
    path("projects/<id:project_id>/compare/blind/", views.compare_blind, name="compare_blind"),
    path(
        "projects/<id:project_id>/compare/generate/",
        views.compare_generate,
        name="compare_generate",
    ),
]

_router = SimpleRouter()
_router.register("", api.RoundViewSet, basename="round")
api_urlpatterns = _router.urls
_jobs_router = SimpleRouter()
_jobs_router.register("", api.JobViewSet, basename="job")
jobs_api_urlpatterns = _jobs_router.urls
