"""The account pages (annotations/views.py api_access, revoke_api_token, PasswordChange) and the
create_api_token command: a key is shown once, works against the API, and stops working when
revoked; one user cannot see or revoke another's tokens."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from feedback.models import ApiToken, Role
from feedback.services.tokens import MAX_ACTIVE_TOKENS, hash_key

pytestmark = pytest.mark.django_db
PAGE = "/account/api/"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def new_key(html: str) -> str:
    return re.search(r'id="new-key"[^>]*value="(arb_[^"]+)"', html).group(1)


def api_projects(key: str) -> int:
    return Client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code


def test_the_page_needs_a_signed_in_user():
    assert reverse("annotations:api_access") == PAGE
    for response in (Client().get(PAGE), Client().post(PAGE, {"name": "x"})):
        assert response.status_code == 302 and response.url.startswith("/login/")
    assert not ApiToken.objects.exists()


def test_a_new_key_is_shown_once_and_works_until_revoked(make_member, project):
    user = make_member(Role.ANNOTATOR)
    client = client_for(user)
    page = client.get(PAGE)
    assert b"You have no tokens yet." in page.content
    # The project ids the API's paths take are listed, with the pairs export path.
    assert f"/api/v1/projects/{project.pk}/exports/pairs/?format=jsonl".encode() in page.content
    # And how a pipeline keeps a snapshot of them and loads it.
    kept = f'url = "http://testserver/api/v1/projects/{project.pk}/exports/pairs/"'
    assert kept.encode() in page.content and b"requests.post(url" in page.content
    assert b'data_files=snapshot["file"]' in page.content

    created = client.post(PAGE, {"name": "  training box  "})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    key = new_key(created.content.decode())
    token = ApiToken.objects.get(user=user)
    assert token.name == "training box" and token.key_hash == hash_key(key)
    assert api_projects(key) == 200

    # Afterwards the page lists the token by its prefix only; the key is nowhere.
    later = client.get(PAGE).content.decode()
    assert key not in later
    assert f"arb_{token.prefix}_" in later and "training box" in later

    revoked = client.post(reverse("annotations:revoke_api_token", args=[token.pk]), follow=True)
    assert "is revoked" in revoked.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_projects(key) == 401
    # A revoked token has no revoke button left.
    assert reverse("annotations:revoke_api_token", args=[token.pk]) not in revoked.content.decode()


def test_bad_names_and_too_many_tokens_are_refused_with_nothing_created(make_user):
    user = make_user()
    client = client_for(user)
    for name in ("", "   ", "x" * 101):
        response = client.post(PAGE, {"name": name})
        assert response.status_code == 422, name
        assert b'class="error-message"' in response.content
        assert b'id="new-key"' not in response.content
    assert not ApiToken.objects.exists()

    for n in range(MAX_ACTIVE_TOKENS):
        client.post(PAGE, {"name": f"token {n}"})
    response = client.post(PAGE, {"name": "one too many"})
    assert response.status_code == 422
    assert b"revoke one before creating another" in response.content
    assert ApiToken.objects.filter(user=user).count() == MAX_ACTIVE_TOKENS


def test_nobody_sees_or_revokes_another_users_tokens(make_user):
    owner, other = make_user(), make_user()
    key = new_key(client_for(owner).post(PAGE, {"name": "owner's box"}).content.decode())
    token = ApiToken.objects.get(user=owner)
    other_client = client_for(other)
    assert b"owner's box" not in other_client.get(PAGE).content
    response = other_client.post(reverse("annotations:revoke_api_token", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None and api_projects(key) == 200
    # Revoking takes a POST: a link or a prefetch cannot revoke a token.
    assert (
        client_for(owner).get(reverse("annotations:revoke_api_token", args=[token.pk])).status_code
        == 405
    )


def test_every_signed_in_page_links_to_api_access(make_user):
    home = client_for(make_user()).get(reverse("annotations:home"))
    assert f'href="{PAGE}"'.encode() in home.content


def test_the_command_prints_a_working_key_and_refuses_unknown_users(make_user):
    user = make_user("alice")
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "ci", stdout=out)
    key = out.getvalue().strip()
    assert re.fullmatch(r"arb_[0-9a-f]{12}_\S+", key)
    assert ApiToken.objects.get(user=user).name == "ci"
    assert api_projects(key) == 200

    make_user("bob", is_active=False)
    for username in ("nobody", "bob"):
        with pytest.raises(CommandError, match="No active user"):
            call_command("create_api_token", username, stdout=StringIO())
    with pytest.raises(CommandError, match="Name the token"):
        call_command("create_api_token", "alice", "--name", " ", stdout=StringIO())
    assert ApiToken.objects.count() == 1


def test_a_user_changes_their_password_and_stays_signed_in(make_user):
    user = make_user("pat")
    client = client_for(user)
    url = reverse("annotations:password_change")
    assert url in client.get(PAGE).content.decode()
    wrong = client.post(
        url, {"old_password": "nope", "new_password1": "x", "new_password2": "x"}
    ).content.decode()
    assert "Your old password was entered incorrectly" in wrong
    assert "This password is too short" in wrong
    new = "a-much-longer-passphrase"
    changed = client.post(
        url, {"old_password": "pw", "new_password1": new, "new_password2": new}, follow=True
    )
    assert changed.redirect_chain == [(PAGE, 302)]
    assert "Your password is changed." in changed.content.decode()
    user.refresh_from_db()
    assert user.check_password(new)
    assert client.get(PAGE).status_code == 200  # the session survived the change
