"""Training job lifecycle: queueing, progress, cancel, resume, and noticing dead workers."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback import services
from feedback.errors import ServiceError
from training import jobs
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(project):
    return services.create_model_version(project_id=project.pk, name="base", base_model="/models/x")


def test_queue_job_sends_the_task_once_committed(
    version, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("training.tasks.run_training_job.delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.queue_job(
            kind="dpo", model_version_id=version.pk, config={"hyperparameters": {}}
        )
    assert sent == [job.pk]
    assert job.status == "queued"


def test_queue_job_refuses_bad_input(project, version):
    untrainable = services.create_model_version(
        project_id=project.pk, name="imported", method="imported"
    )
    with pytest.raises(ServiceError, match="Job kind"):
        jobs.queue_job(kind="finetune", model_version_id=version.pk)
    with pytest.raises(ServiceError, match="names no base model"):
        jobs.queue_job(kind="dpo", model_version_id=untrainable.pk)
    with pytest.raises(ServiceError, match="No model version"):
        jobs.queue_job(kind="dpo", model_version_id=987654)
    assert TrainingJob.objects.count() == 0


def test_progress_and_metrics_are_recorded(version):
    job = TrainingJob.objects.create(project=version.project, kind="dpo", model_version=version)
    assert jobs.start(job.pk).status == "running"
    jobs.record_metrics(job.pk, {"step": 1, "loss": 0.7}, progress=25.0)
    jobs.record_metrics(job.pk, {"step": 2, "loss": 0.6}, progress=250.0)
    job.refresh_from_db()
    assert [row["loss"] for row in job.metrics_history] == [0.7, 0.6]
    assert job.progress == 100.0
    assert job.attempts == 1 and job.heartbeat_at is not None


def test_a_runs_reports_reach_the_job_in_batches_and_all_of_them_when_it_stops(
    version, monkeypatch
):
    from training import runners
    from training.engine.runs import RunCancelled

    job = TrainingJob.objects.create(project=version.project, kind="dpo", model_version=version)
    jobs.start(job.pk)
    clock = [0.0]
    monkeypatch.setattr("training.runners.time.monotonic", lambda: clock[0])
    writes = []
    record = jobs.record_metrics

    def counted(job_id, *reports, progress=None):
        writes.append([row["step"] for row in reports])
        record(job_id, *reports, progress=progress)

    monkeypatch.setattr(jobs, "record_metrics", counted)

    def train(config, output_dir, on_metrics, should_cancel):
        for step in range(1, 8):
            on_metrics({"step": step, "loss": 1.0 / step})
            clock[0] += 0.5
        raise RunCancelled(7)

    with pytest.raises(RunCancelled):
        runners.train_version(job, "dpo", None, train, total_steps=10)
    # At once, then two seconds later, then what was left when the run stopped.
    assert writes == [[1], [2, 3, 4, 5], [6, 7]]
    job.refresh_from_db()
    assert [row["step"] for row in job.metrics_history] == [1, 2, 3, 4, 5, 6, 7]
    assert job.progress == 70.0


def test_reports_are_written_less_often_once_writing_them_is_slow(version, monkeypatch):
    from training import runners

    job = TrainingJob.objects.create(project=version.project, kind="dpo", model_version=version)
    jobs.start(job.pk)
    clock = [0.0]
    monkeypatch.setattr("training.runners.time.monotonic", lambda: clock[0])
    writes = []

    def slow_write(job_id, *reports, progress=None):
        writes.append([row["step"] for row in reports])
        clock[0] += 0.5  # a long history: each write takes half a second

    monkeypatch.setattr(jobs, "record_metrics", slow_write)
    reporter = runners.JobReporter(job, total_steps=100)
    for step in range(1, 13):
        reporter.on_metrics({"step": step})
        clock[0] += 1.0
    # Each write then waits 0.5 / 5% = 10 s, not 2, so writing stays a twentieth of the time.
    assert writes == [[1], [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]


def test_cancel_a_queued_job_at_once_and_a_running_one_cooperatively(version):
    queued = TrainingJob.objects.create(project=version.project, kind="dpo", model_version=version)
    assert jobs.request_cancel(queued.pk).status == "cancelled"
    running = TrainingJob.objects.create(
        project=version.project, kind="dpo", model_version=version, status="running"
    )
    jobs.request_cancel(running.pk)
    running.refresh_from_db()
    assert running.status == "running" and jobs.is_cancel_requested(running.pk)
    with pytest.raises(ServiceError, match="already ended"):
        jobs.request_cancel(queued.pk)


def test_a_job_whose_worker_died_is_failed_and_can_resume(
    version, django_capture_on_commit_callbacks, monkeypatch
):
    job = TrainingJob.objects.create(
        project=version.project,
        kind="dpo",
        model_version=version,
        status="running",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    fresh = TrainingJob.objects.create(
        project=version.project,
        kind="dpo",
        model_version=version,
        status="running",
        heartbeat_at=timezone.now(),
    )
    assert jobs.fail_stale_jobs() == [job.pk]
    job.refresh_from_db()
    assert job.status == "failed" and "stopped responding" in job.error
    sent = []
    monkeypatch.setattr("training.tasks.run_training_job.delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.resume(job.pk)
    job.refresh_from_db()
    assert job.status == "queued" and sent == [job.pk]
    with pytest.raises(ServiceError, match="Only a failed or cancelled"):
        jobs.resume(fresh.pk)


def test_a_run_beats_its_heart_while_a_long_step_reports_nothing(version, monkeypatch):
    from training import runners

    job = TrainingJob.objects.create(project=version.project, kind="dpo", model_version=version)
    job = jobs.start(job.pk)
    old = timezone.now() - timedelta(hours=1)
    TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=old)
    jobs.beat(job.pk, job.attempts + 1)  # another run's beat
    assert TrainingJob.objects.get(pk=job.pk).heartbeat_at == old
    beats = []
    monkeypatch.setattr(runners, "HEARTBEAT_SECONDS", 0.01)
    monkeypatch.setattr(jobs, "beat", lambda job_id, attempt: beats.append((job_id, attempt)))
    with runners.heartbeats(job):
        deadline = time.monotonic() + 5
        while len(beats) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beats[:2] == [(job.pk, job.attempts)] * 2
    monkeypatch.undo()
    jobs.beat(job.pk, job.attempts)
    assert TrainingJob.objects.get(pk=job.pk).heartbeat_at > old
