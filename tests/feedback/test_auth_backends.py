from django.contrib.auth import get_user_model

from feedback.auth_backends import ModelBackend


def test_resolves_the_session_user_with_its_fields(db, make_user):
    user = make_user(username="ann", is_staff=True)
    found = ModelBackend().get_user(user.pk)
    assert isinstance(found, get_user_model())
    assert (found.pk, found.username, found.is_staff) == (user.pk, "ann", True)
    assert found.check_password("pw")


def test_refuses_inactive_and_unknown_users(db, make_user):
    user = make_user(is_active=False)
    assert ModelBackend().get_user(user.pk) is None
    assert ModelBackend().get_user(user.pk + 1000) is None


def test_a_signed_in_client_reaches_a_page_and_is_out_after_logout(client, make_user):
    user = make_user()
    client.force_login(user)
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302
