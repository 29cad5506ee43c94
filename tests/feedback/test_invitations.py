"""Invitation links: who they let in, as what, and when they stop working."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import Invitation, Membership
from feedback.services.invitations import (
    accept_invitation,
    create_invitation,
    join_with_new_account,
    revoke_invitation,
)
from feedback.services.tokens import hash_key

pytestmark = pytest.mark.django_db
PASSWORD = "long enough and rare 7"


def test_a_link_adds_people_in_its_role_and_never_changes_a_members_role(
    project, make_user, make_member
):
    admin = make_member(role="admin")
    issued = create_invitation(project_id=project.pk, role="reviewer", created_by_id=admin.pk)
    assert issued.invitation.key_hash == hash_key(issued.key) and issued.key not in str(
        Invitation.objects.values_list().get()
    )
    newcomer = make_user()
    joined = accept_invitation(key=issued.key, user_id=newcomer.pk)
    assert (joined.user_id, joined.role) == (newcomer.pk, "reviewer")
    annotator = make_member(role="annotator")
    assert accept_invitation(key=issued.key, user_id=annotator.pk).role == "annotator"
    assert accept_invitation(key=issued.key, user_id=admin.pk).role == "admin"
    issued.invitation.refresh_from_db()
    assert issued.invitation.uses == 1  # members already did not count

    for role, days, message in (("admin", 7, "Add admins by name"), ("reviewer", 31, "1 to 30")):
        with pytest.raises(ServiceError, match=message):
            create_invitation(project_id=project.pk, role=role, created_by_id=admin.pk, days=days)


def test_expired_and_revoked_links_let_nobody_in_and_make_no_account(project, make_user):
    expired = create_invitation(project_id=project.pk, role="annotator", created_by_id=None)
    Invitation.objects.filter(pk=expired.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked = create_invitation(project_id=project.pk, role="annotator", created_by_id=None)
    revoke_invitation(project_id=project.pk, invitation_id=revoked.invitation.pk)
    with pytest.raises(ServiceError, match="No such invitation"):
        revoke_invitation(project_id=project.pk, invitation_id=revoked.invitation.pk)
    someone = make_user()
    for issued in (expired, revoked):
        with pytest.raises(ServiceError, match="expired or was revoked"):
            accept_invitation(key=issued.key, user_id=someone.pk)
        with pytest.raises(ServiceError, match="expired or was revoked"):
            join_with_new_account(key=issued.key, username="fresh", password=PASSWORD)
    with pytest.raises(ServiceError, match="expired or was revoked"):
        accept_invitation(key="made-up", user_id=someone.pk)
    assert not Membership.objects.filter(user=someone).exists()
    assert not get_user_model().objects.filter(username="fresh").exists()


def test_a_removed_member_is_not_let_back_in_by_an_older_link(project, make_user):
    from feedback.services.projects import add_member, remove_member

    dave = make_user()
    kept = create_invitation(project_id=project.pk, role="reviewer", created_by_id=None)
    accept_invitation(key=kept.key, user_id=dave.pk)
    remove_member(project_id=project.pk, user_id=dave.pk)
    with pytest.raises(ServiceError, match="taken off this project after this link was made"):
        accept_invitation(key=kept.key, user_id=dave.pk)
    assert not Membership.objects.filter(user=dave).exists()
    Invitation.objects.filter(pk=kept.invitation.pk).update(
        created_at=timezone.now() - timedelta(days=1)
    )
    newer = create_invitation(project_id=project.pk, role="annotator", created_by_id=None)
    assert accept_invitation(key=newer.key, user_id=dave.pk).role == "annotator"
    # Removed again, then added back by an admin: the old link no longer stands in the way.
    remove_member(project_id=project.pk, user_id=dave.pk)
    add_member(project_id=project.pk, user_id=dave.pk, role="annotator")
    remove_member(project_id=project.pk, user_id=dave.pk)
    with pytest.raises(ServiceError, match="taken off"):
        accept_invitation(key=newer.key, user_id=dave.pk)


def test_a_new_account_needs_a_free_name_and_a_good_password_or_nothing_is_made(project, make_user):
    issued = create_invitation(project_id=project.pk, role="annotator", created_by_id=None)
    make_user(username="taken")
    cases = [
        ("Taken", PASSWORD, "exists already; sign in to join with it"),
        ("Arbiter-Import", PASSWORD, "Arbiter's own account"),  # imported battles' judge
        ("new user", PASSWORD, "letters, digits"),
        ("newcomer", "short", "too short"),
        ("newcomer", "password123", "too common"),
    ]
    for username, password, message in cases:
        with pytest.raises(ServiceError, match=message):
            join_with_new_account(key=issued.key, username=username, password=password)
    assert not get_user_model().objects.filter(username="newcomer").exists()
    joined = join_with_new_account(key=issued.key, username=" newcomer ", password=PASSWORD)
    assert (joined.user.username, joined.role) == ("newcomer", "annotator")
    assert joined.user.check_password(PASSWORD)


def test_admins_make_and_revoke_links_on_the_settings_page_and_newcomers_join_through_them(
    project, make_member, make_user
):
    admin = make_member(role="admin")
    client = Client()
    client.force_login(admin)
    url = f"/insights/projects/{project.pk}/settings/"
    made = client.post(url, {"action": "invite", "invite-role": "reviewer", "invite-days": 3})
    assert made.status_code == 200 and "no-store" in made["Cache-Control"]
    page = made.content.decode()
    link = page.split('id="new-link" class="key" readonly value="')[1].split('"')[0]
    assert link.startswith("http://testserver/join/")
    assert Invitation.objects.get().role == "reviewer"
    assert link not in client.get(url).content.decode()  # shown once
    refused = client.post(url, {"action": "invite", "invite-role": "admin", "invite-days": 3})
    assert refused.status_code == 422 and Invitation.objects.count() == 1

    newcomer = Client()
    path = link.removeprefix("http://testserver")
    assert "Join " in newcomer.get(path).content.decode()
    mismatch = newcomer.post(
        path, {"username": "ada", "password": PASSWORD, "password_again": PASSWORD + "x"}
    )
    assert mismatch.status_code == 422 and "The two passwords differ." in mismatch.content.decode()
    joined = newcomer.post(
        path, {"username": "ada", "password": PASSWORD, "password_again": PASSWORD}, follow=True
    )
    assert joined.redirect_chain == [("/", 302)]
    assert "You are a reviewer in" in joined.content.decode()  # and signed in, on the home page
    assert Membership.objects.get(user__username="ada").role == "reviewer"

    signed_in = Client()
    signed_in.force_login(make_member(role="annotator"))
    assert "and stay one" in signed_in.get(path).content.decode()
    outsider = make_user()
    signed_in.force_login(outsider)
    assert "Join as " in signed_in.get(path).content.decode()
    assert signed_in.post(path).status_code == 302
    assert Membership.objects.get(user=outsider, project=project).role == "reviewer"

    invitation = Invitation.objects.get()
    client.post(url, {"action": "revoke_invite", "invitation_id": invitation.pk})
    gone = Client().get(path)
    assert gone.status_code == 404 and "expired or was revoked" in gone.content.decode()
    assert "Make a link" in client.get(url).content.decode()
    reviewer = Client()
    reviewer.force_login(make_member(role="reviewer"))
    assert reviewer.post(url, {"action": "invite", "invite-role": "annotator"}).status_code == 403
