"""Shared fixtures: small builders for domain objects and a real Celery worker process."""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from config.celery import worker_command
from feedback import services
from feedback.models import Role

ROOT = Path(__file__).resolve().parent.parent
requires_services = pytest.mark.skipif(
    os.environ.get("ARBITER_TEST_SERVICES") != "1",
    reason="needs PostgreSQL and Redis: run through `make test` (tests/services.sh)",
)


def run_on_sqlite(tmp_path: Path, script: str) -> dict:
    """Run `script` in `manage.py shell` against a fresh SQLite database, the demo's: the suite
    itself runs on PostgreSQL, where imports and leases take other paths. The script prints a
    JSON object as its last line; that object is returned."""
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.pop("CELERY_BROKER_URL", None)  # the demo's embedded broker
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# Longer than any one statement of the suite takes; a statement that runs away fails the test.
STATEMENT_TIMEOUT = "120s"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database on PostgreSQL, without autovacuum and with a statement timeout.

    An autovacuum ANALYZE during a test does not count that test's rows (not committed yet) yet
    records the pages they fill, and its figures outlast the test's rollback: every later test
    then plans as if the table held one row. Once, a read of 2,000 rows planned that way ran for
    minutes. Without it, a table no test analyzes is planned from its size. A statement that
    still runs away fails after STATEMENT_TIMEOUT instead of holding up the suite."""
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()"
                )
                for (table,) in cursor.fetchall():
                    cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                name = connection.ops.quote_name(connection.settings_dict["NAME"])
                cursor.execute(
                    f"ALTER DATABASE {name} SET statement_timeout = '{STATEMENT_TIMEOUT}'"
                )
                cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")


@pytest.fixture(scope="session")
def tiny_base() -> str:
    """A pretrained 2-layer Llama answering the demo prompts; cached so later runs skip the build."""
    import hashlib

    from training.engine import tiny

    # Keyed on the builder's source, so a change to what it builds rebuilds the cache.
    version = hashlib.sha256(Path(tiny.__file__).read_bytes()).hexdigest()[:12]
    cached = ROOT / "var" / "cache" / f"tiny-base-{version}"
    if not (cached / "config.json").exists():
        # Parallel test processes may build at once: each in its own folder, the first rename wins.
        partial = cached.with_name(f"{cached.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        tiny.build_tiny_model(partial)
        try:
            partial.rename(cached)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return str(cached)


@dataclass
class Coin:
    value: float


@pytest.fixture(autouse=True)
def gold_coin(monkeypatch):
    """The queue's draw for gold checks, fixed: no lease is a check unless a test sets the
    value below its project's gold_percent (0 makes every lease that can be one, one)."""
    coin = Coin(100.0)
    monkeypatch.setattr("feedback.services.queue.gold_coin", lambda: coin.value)
    return coin


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path):
    """Files a test has Arbiter write (exports, adapters, job folders) land in its own folder,
    never in the checkout's var/."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 1_000_000))

    def build(username: str | None = None, **fields):
        name = username or f"user{next(counter)}"
        return get_user_model().objects.create_user(username=name, password="pw", **fields)

    return build


@pytest.fixture
def project(db):
    return services.create_project(name="Test project", modes=("pairwise", "ranking", "rating"))


@pytest.fixture
def make_member(make_user, project):
    def build(role: str = Role.ANNOTATOR, project_=None, **fields):
        user = make_user(**fields)
        services.add_member(project_id=(project_ or project).pk, user_id=user.pk, role=role)
        return user

    return build


@pytest.fixture
def make_task(project):
    """A task over `n` fresh completions of a fresh prompt; returns the task."""
    counter = iter(range(1, 1_000_000))

    def build(n: int = 2, mode: str = "pairwise", project_=None, **task_fields):
        target = project_ or project
        prompt = services.create_prompt(project_id=target.pk, text=f"Prompt {next(counter)}?")
        completions = [
            services.create_completion(prompt_id=prompt.pk, text=f"Answer {i} to {prompt.text}")
            for i in range(n)
        ]
        return services.create_task(
            prompt_id=prompt.pk,
            completion_ids=[c.pk for c in completions],
            mode=mode,
            **task_fields,
        )

    return build


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path_factory):
    """A real `celery worker` process on Redis, writing to the test database."""
    if os.environ.get("ARBITER_TEST_SERVICES") != "1":
        pytest.skip("needs PostgreSQL and Redis: run through `make test`")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PYTHONUNBUFFERED": "1",
        "ARBITER_ARTIFACT_ROOT": str(tmp_path_factory.mktemp("worker-artifacts")),
    }
    log_path = ROOT / "var" / f"test-worker-{os.getpid()}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    worker = subprocess.Popen(
        worker_command(
            "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"
        ),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("Celery worker did not start:\n" + log_path.read_text())
        time.sleep(0.2)
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
    log.close()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    """Poll until predicate() is truthy; return its value or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
