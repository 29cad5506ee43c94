"""Top-level URLs: admin, auth, the annotator UI, the API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from training.urls import api_urlpatterns as round_api_urlpatterns
from training.urls import jobs_api_urlpatterns


def favicon(request):
    """Browsers ask for /favicon.ico where a page names no icon (the admin's pages)."""
    return redirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/rounds/", include((round_api_urlpatterns, "rounds_api"))),
    path("api/v1/jobs/", include((jobs_api_urlpatterns, "jobs_api"))),
    path("api/v1/", include("feedback.api.urls")),
    path("insights/", include("feedback.urls")),
    path("training/", include("training.urls")),
    path("", include("annotations.urls")),
]
