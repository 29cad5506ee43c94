import os

from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client

from feedback.auth_backends import ModelBackend
from tests.conftest import requires_services


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


@requires_services
def test_sessions_in_a_shared_redis_cache_end_at_logout(client, make_user, settings):
    """Production keeps sessions in Redis (CACHE_URL): a logout in one process must end the
    session everywhere, which only a shared cache guarantees."""
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": os.environ["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/2",
        }
    }
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    user = make_user()
    client.force_login(user)
    key = client.cookies["sessionid"].value
    assert caches["default"].get(f"django.contrib.sessions.cached_db{key}") is not None
    assert client.get("/").status_code == 200
    other_process = Client()  # another server process would read the same cache
    other_process.cookies["sessionid"] = key
    assert other_process.get("/").status_code == 200
    client.post("/logout/")
    assert other_process.get("/").status_code == 302
    # One Redis client serves every call (Django's own backend builds one per call).
    assert caches["default"]._cache.get_client() is caches["default"]._cache.get_client()
    caches["default"].clear()
