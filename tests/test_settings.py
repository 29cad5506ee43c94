"""Settings come from the environment with safe production defaults."""

import os
import subprocess
import sys
from pathlib import Path

from django.templatetags.static import static

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, **env):
    # The test process's own settings (and the browser tests' async flag) must not leak in.
    leaked = {
        "DEBUG",
        "SECRET_KEY",
        "SECURE_SSL_REDIRECT",
        "SECURE_COOKIES",
        "ALLOWED_HOSTS",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    clean = {k: v for k, v in os.environ.items() if k not in leaked}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY="x" * 20 + "-a-long-and-random-production-secret-value-0123456789",
        ALLOWED_HOSTS="arbiter.example.org",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def conn_max_age(command: str) -> str:
    code = (
        f"import sys; sys.argv = ['manage.py', {command!r}]; "
        "from config import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_CONN_MAX_AGE",)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DEBUG": "1", "DATABASE_URL": "postgres://arbiter@127.0.0.1:1/arbiter"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_development_server_keeps_no_database_connection_open():
    assert conn_max_age("runserver") == conn_max_age("serve_demo") == "0"
    assert conn_max_age("check") == "60"  # and Granian's worker threads keep theirs


def test_missing_secret_key_is_refused_outside_debug():
    result = manage("check")
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_favicon_ico_points_at_the_site_icon(client):
    """The admin's pages name no icon, so browsers ask for /favicon.ico."""
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("favicon.svg")
    assert response["Location"].endswith(".svg")
