from django.urls import path

from feedback import views

app_name = "insights"

urlpatterns = [
    path("projects/new/", views.new_project, name="new_project"),
    path("projects/<id:project_id>/leaderboard/", views.leaderboard, name="leaderboard"),
    path("projects/<id:project_id>/agreement/", views.agreement, name="agreement"),
    path("projects/<id:project_id>/data/", views.data, name="data"),
    path("projects/<id:project_id>/imports/", views.imports, name="imports"),
    path("projects/<id:project_id>/settings/", views.project_settings, name="settings"),
]
