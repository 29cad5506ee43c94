from django.urls import path

from annotations import queue_api, views

app_name = "annotations"

urlpatterns = [
    path("", views.home, name="home"),
    path("account/api/", views.api_access, name="api_access"),
    path("account/password/", views.PasswordChange.as_view(), name="password_change"),
    path("join/<str:key>/", views.join, name="join"),
    path(
        "account/api/tokens/<id:token_id>/revoke/",
        views.revoke_api_token,
        name="revoke_api_token",
    ),
    path("projects/<id:project_id>/work/", views.work, name="work"),
    path("projects/<id:project_id>/tasks/<id:task_id>/judgment/", views.submit, name="submit"),
    path("projects/<id:project_id>/tasks/<id:task_id>/skip/", views.skip, name="skip"),
    path("projects/<id:project_id>/undo/", views.undo, name="undo"),
    path("projects/<id:project_id>/prompts/", views.prompt_list, name="prompt_list"),
    path("projects/<id:project_id>/prompts/<id:prompt_id>/", views.prompt_page, name="prompt_page"),
    path("projects/<id:project_id>/review/", views.review_list, name="review_list"),
    path("projects/<id:project_id>/review/<id:task_id>/", views.review_task, name="review_task"),
    path("annotate/api/projects/<id:project_id>/next/", queue_api.next_task, name="api_next"),
    path(
        "annotate/api/projects/<id:project_id>/tasks/<id:task_id>/judgment/",
        queue_api.submit,
        name="api_submit",
    ),
]
