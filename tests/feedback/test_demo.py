"""The demo loader can run again safely, and leaves the demo projects ready to use."""

from pathlib import Path

import pytest
from django.core.management import call_command

from feedback import leaderboards
from feedback.demo import ARENA_BATTLES, ARENA_PROJECT, DEMO_PROJECT
from feedback.models import AnnotationTask, ModelVersion, Project, Prompt
from feedback.services import next_task_for
from training import demo as training_demo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def prebuilt_tiny_base(monkeypatch, tiny_base):
    monkeypatch.setattr(training_demo, "tiny_base_path", lambda: Path(tiny_base))


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    counts = (Project.objects.count(), Prompt.objects.count(), AnnotationTask.objects.count())
    call_command("seed_demo")
    assert (
        Project.objects.count(),
        Prompt.objects.count(),
        AnnotationTask.objects.count(),
    ) == counts
    assert counts[0] == 3 and counts[2] >= 20
    out = capsys.readouterr().out
    assert "annotator" in out and "arbiter-annotator" in out


def test_demo_annotator_has_work(django_user_model):
    call_command("seed_demo")
    annotator = django_user_model.objects.get(username="annotator")
    project = Project.objects.get(name=DEMO_PROJECT)
    assert next_task_for(annotator_id=annotator.pk, project_id=project.pk) is not None


def test_arena_demo_shows_the_hidden_order_and_what_style_control_takes_out():
    call_command("seed_demo")
    project = Project.objects.get(name=ARENA_PROJECT)
    board = leaderboards.leaderboard(project.pk, style_control=True)
    assert board.comparisons == ARENA_BATTLES
    raw = [row.model for row in sorted(board.rows, key=lambda row: -row.bt_score)]
    held = [row.model for row in sorted(board.rows, key=lambda row: -row.style_score)]
    assert raw[0] == "arena-large" and raw[-1] == "arena-small"
    # The judges' taste for markdown lifts "arena-chatty" level with "arena-medium"; with style
    # held fixed the hidden order (large, medium, chatty, small) comes back.
    assert held == ["arena-large", "arena-medium", "arena-chatty", "arena-small"]
    chatty = {row.model: row for row in board.rows}["arena-chatty"]
    assert chatty.style_score < chatty.bt_score


def test_alignment_demo_has_a_local_policy_and_prompts(tiny_base):
    call_command("seed_demo")
    project = Project.objects.get(name=training_demo.ALIGNMENT_PROJECT)
    policy = ModelVersion.objects.get(project=project, name=training_demo.TINY_BASE_NAME)
    assert policy.base_model == tiny_base and (Path(tiny_base) / "config.json").exists()
    prompt_set = project.prompt_sets.get()
    assert prompt_set.prompts.filter(split="train").count() >= 16
    assert project.prompts.filter(split="held_out").exists()
    # Rounds start from settings that move a tiny model, not the engine's (for real models).
    assert project.round_defaults.hyperparameters == training_demo.DEMO_ROUND_DEFAULTS


def test_stopping_serve_demo_with_sigterm_stops_its_worker(tmp_path):
    """`kill` on the demo server (as a process manager sends it) must not leave the Celery worker
    running on its own."""
    import contextlib
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    env.pop("CELERY_BROKER_URL", None)  # the demo's embedded broker
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve_demo", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not workers:
            time.sleep(0.5)
            workers = psutil.Process(server.pid).children()
        assert workers, "serve_demo started no worker"
        time.sleep(3)  # let the web server and the worker come up
        assert all(worker.is_running() for worker in workers)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"still running after SIGTERM: {alive}"
    finally:
        for process in (server, *workers):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()


def test_serve_demo_on_a_taken_port_says_so_and_starts_no_worker(tmp_path):
    """runserver would exit at once (os._exit) and leave the worker running on its own."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    env.pop("CELERY_BROKER_URL", None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "manage.py", "serve_demo", "--port", str(port)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"Port {port} is in use (is the demo running already?)" in done.stderr
    assert "celery" not in done.stdout.lower() + done.stderr.lower()  # no worker was started
