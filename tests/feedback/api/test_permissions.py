"""Every endpoint against anonymous, annotator, reviewer, admin (project roles) and an outsider."""

import json

import pytest

from feedback import services
from feedback.services.exports import ExportRequest, export_to_file
from feedback.services.imports import import_jsonl
from feedback.services.invitations import create_invitation
from feedback.services.tokens import issue_token

pytestmark = pytest.mark.django_db

ALLOW = "allow"
DENY = "deny"  # 403: a member whose role is too low
HIDDEN = "hidden"  # 404: not a member, so the project is not revealed
ANON = 401

# endpoint -> expected outcome per caller: (anonymous, outsider, annotator, reviewer, admin)
EVERY_ROLE = (ANON, ALLOW, ALLOW, ALLOW, ALLOW)
MEMBERS = (ANON, HIDDEN, ALLOW, ALLOW, ALLOW)
REVIEWERS = (ANON, HIDDEN, DENY, ALLOW, ALLOW)
ADMINS = (ANON, HIDDEN, DENY, DENY, ALLOW)

CASES = [
    ("get", "/api/v1/schema/", EVERY_ROLE),
    ("get", "/api/v1/docs/", EVERY_ROLE),
    ("get", "/api/v1/tokens/", EVERY_ROLE),
    # Sessions only (test_api): a token cannot make another.
    ("post", "/api/v1/tokens/", (ANON, DENY, DENY, DENY, DENY)),
    ("delete", "/api/v1/tokens/{own_token}/", EVERY_ROLE),
    ("get", "/api/v1/projects/", EVERY_ROLE),
    ("post", "/api/v1/projects/", (ANON, DENY, DENY, DENY, DENY)),  # staff only
    ("get", "/api/v1/projects/{project}/", MEMBERS),
    ("patch", "/api/v1/projects/{project}/", ADMINS),
    ("delete", "/api/v1/projects/{project}/", ADMINS),
    ("get", "/api/v1/projects/{project}/members/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/members/", ADMINS),
    ("patch", "/api/v1/projects/{project}/members/{annotator}/", ADMINS),
    ("delete", "/api/v1/projects/{project}/members/{annotator}/", ADMINS),
    ("get", "/api/v1/projects/{project}/model-versions/", MEMBERS),
    ("patch", "/api/v1/projects/{project}/model-versions/{version}/", ADMINS),
    ("delete", "/api/v1/projects/{project}/model-versions/{version}/", ADMINS),
    ("get", "/api/v1/projects/{project}/invitations/", ADMINS),
    ("post", "/api/v1/projects/{project}/invitations/", ADMINS),
    ("delete", "/api/v1/projects/{project}/invitations/{invitation}/", ADMINS),
    ("get", "/api/v1/projects/{project}/prompts/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/completions/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/imports/", ADMINS),
    ("post", "/api/v1/projects/{project}/imports/", ADMINS),
    ("delete", "/api/v1/projects/{project}/imports/{batch}/", ADMINS),
    ("get", "/api/v1/projects/{project}/prompt-sets/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/prompt-sets/", ADMINS),
    ("get", "/api/v1/projects/{project}/tasks/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/tasks/", ADMINS),
    ("delete", "/api/v1/projects/{project}/tasks/", ADMINS),
    ("put", "/api/v1/projects/{project}/tasks/{task}/gold/", REVIEWERS),
    ("delete", "/api/v1/projects/{project}/tasks/{task}/gold/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/next-task/", MEMBERS),
    ("post", "/api/v1/projects/{project}/undo/", MEMBERS),
    ("post", "/api/v1/projects/{project}/pairs/derive/", ADMINS),
    ("get", "/api/v1/projects/{project}/exports/pairs/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/exports/judgments/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/exports/ratings/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/exports/outputs/", REVIEWERS),
    ("head", "/api/v1/projects/{project}/exports/pairs/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/exports/pairs/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/exports/judgments/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/exports/ratings/", REVIEWERS),
    ("post", "/api/v1/projects/{project}/exports/outputs/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/leaderboard/", REVIEWERS),
    ("get", "/api/v1/projects/{project}/agreement/", REVIEWERS),
    ("get", "/api/v1/judgments/", EVERY_ROLE),
    ("get", "/api/v1/exports/", EVERY_ROLE),
    # Snapshots are listed to their project's reviewers only: to others they do not exist.
    ("get", "/api/v1/exports/{snapshot}/", (ANON, HIDDEN, HIDDEN, ALLOW, ALLOW)),
    ("get", "/api/v1/exports/{snapshot}/file/", (ANON, HIDDEN, HIDDEN, ALLOW, ALLOW)),
    ("head", "/api/v1/exports/{snapshot}/file/", (ANON, HIDDEN, HIDDEN, ALLOW, ALLOW)),
]
CALLERS = ("anonymous", "outsider", "annotator", "reviewer", "admin")
BODIES = {
    "/api/v1/tokens/": {"name": "ci"},
    "/api/v1/projects/{project}/pairs/derive/": {"name": "majority"},
    "/api/v1/projects/{project}/tasks/": {"mode": "pairwise"},
    "/api/v1/projects/{project}/tasks/{task}/gold/": {"choice": "a"},
    "/api/v1/projects/{project}/prompt-sets/": {"name": "everything"},
    "/api/v1/projects/": {"name": "Another project"},
    "/api/v1/projects/{project}/": {"overlap": 2},
    "/api/v1/projects/{project}/members/": {"username": "newcomer"},
    "/api/v1/projects/{project}/members/{annotator}/": {"role": "reviewer"},
    "/api/v1/projects/{project}/model-versions/{version}/": {"name": "renamed"},
}


@pytest.fixture
def callers(make_user, make_member):
    return {
        "anonymous": None,
        "outsider": make_user(),
        "annotator": make_member(role="annotator"),
        "reviewer": make_member(role="reviewer"),
        "admin": make_member(role="admin"),
    }


def call(client, method: str, url: str, template: str):
    if template.endswith("/undo/"):
        # Something to take back, where the caller may judge at all.
        lease = client.post(url.replace("/undo/", "/next-task/"))
        if lease.status_code == 200:
            body = {"task": lease.data["task_id"], "kind": "pairwise", "choice": "a"}
            judged = client.post(
                "/api/v1/judgments/", body | {"idempotency_key": "k"}, format="json"
            )
            assert judged.status_code == 201
    if template.endswith("/imports/") and method == "post":
        body = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
        return client.post(url, data=body, content_type="application/jsonl")
    if method in ("post", "put", "patch"):
        return getattr(client, method)(url, data=BODIES.get(template, {}), format="json")
    return getattr(client, method)(url)


@pytest.mark.parametrize("caller_index,caller", list(enumerate(CALLERS)))
@pytest.mark.parametrize("method,template,expected", CASES, ids=[f"{m} {t}" for m, t, _ in CASES])
def test_permission_matrix(
    client_for,
    callers,
    project,
    make_task,
    make_user,
    method,
    template,
    expected,
    caller_index,
    caller,
):
    task = make_task()
    make_user(username="newcomer")
    user = callers[caller]
    client = client_for(user)
    own_token = issue_token(user_id=user.pk, name="to revoke").token.pk if user else 1
    invitation = create_invitation(project_id=project.pk, role="annotator", created_by_id=None)
    batch = import_jsonl(project_id=project.pk, user_id=None, lines=['{"prompt": "mine"}']).batch
    url = template.format(
        project=project.pk,
        task=task.pk,
        batch=batch.pk,
        own_token=own_token,
        annotator=callers["annotator"].pk,
        invitation=invitation.invitation.pk,
        version=services.create_model_version(project_id=project.pk, name="unused").pk,
        snapshot=export_to_file(ExportRequest(project_id=project.pk), user_id=None)[0].pk,
    )
    response = call(client, method, url, template)
    outcome = expected[caller_index]
    if outcome == ALLOW:
        assert response.status_code < 300, (response.status_code, getattr(response, "data", None))
    elif outcome == DENY:
        assert response.status_code == 403
    elif outcome == HIDDEN:
        assert response.status_code == 404
    else:
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_staff_are_admins_of_every_project(client_for, make_user, project):
    staff = make_user(is_staff=True)
    response = client_for(staff).get(f"/api/v1/projects/{project.pk}/imports/")
    assert response.status_code == 200


def test_lists_only_show_what_the_caller_may_see(client_for, make_member, make_user, project):
    other = services.create_project(name="Other project")
    outsider_admin = make_user()
    services.add_member(project_id=other.pk, user_id=outsider_admin.pk, role="admin")
    reviewer = make_member(role="reviewer")
    ids = [row["id"] for row in client_for(reviewer).get("/api/v1/projects/").data["results"]]
    assert ids == [project.pk]
    client_for(outsider_admin).get(f"/api/v1/projects/{other.pk}/exports/pairs/")
    assert client_for(reviewer).get("/api/v1/exports/").data["results"] == []
