"""Run plumbing: metrics history across resumes, checkpoint discovery, cancellation."""

import json

import pytest

from training.engine.runs import (
    MetricsRecorder,
    RunCancelled,
    check_cancelled,
    latest_checkpoint,
)


def test_metrics_recorder_forwards_reports_and_trims_history_on_resume(tmp_path):
    seen = []
    recorder = MetricsRecorder(tmp_path, on_metrics=seen.append)
    for step in (1, 2, 3):
        recorder.report({"step": step, "loss": 1.0 / step})
    assert [row["step"] for row in seen] == [1, 2, 3]
    recorder.flush()  # as before a checkpoint

    resumed = MetricsRecorder(tmp_path)
    resumed.resume_at(2)
    resumed.report({"step": 3, "loss": 0.25})
    resumed.finish({"step": 3})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["step"] for row in saved["history"]] == [1, 2, 3]
    assert saved["history"][-1]["loss"] == 0.25
    assert saved["final"] == {"step": 3}


def test_metrics_file_is_rewritten_every_few_seconds_at_checkpoints_and_at_the_end(
    tmp_path, monkeypatch
):
    clock = [100.0]
    monkeypatch.setattr("training.engine.runs.time.monotonic", lambda: clock[0])
    seen = []
    recorder = MetricsRecorder(tmp_path, on_metrics=seen.append, write_every_s=5.0)

    def saved_steps():
        saved = json.loads((tmp_path / "metrics.json").read_text())
        return [row["step"] for row in saved["history"]]

    for step in (1, 2, 3):
        recorder.report({"step": step})
        clock[0] += 2.0
    assert saved_steps() == [1]  # written at the first report; 4 s later, not yet again
    recorder.report({"step": 4})  # 6 s after the last write
    assert saved_steps() == [1, 2, 3, 4]
    recorder.report({"step": 5})
    recorder.flush()
    assert saved_steps() == [1, 2, 3, 4, 5]
    recorder.report({"step": 6})
    recorder.finish({"step": 6})
    assert saved_steps() == [1, 2, 3, 4, 5, 6]
    assert [row["step"] for row in seen] == [1, 2, 3, 4, 5, 6]


def test_metrics_file_is_written_less_often_once_writing_it_is_slow(tmp_path, monkeypatch):
    from training.engine import runs

    clock = [0.0]
    monkeypatch.setattr("training.engine.runs.time.monotonic", lambda: clock[0])
    written = []

    def slow_write(path, payload):
        written.append(len(payload["history"]))
        clock[0] += 1.0  # a long history: each write takes a second

    monkeypatch.setattr(runs, "write_json_atomically", slow_write)
    recorder = MetricsRecorder(tmp_path, write_every_s=5.0)
    for step in range(1, 25):
        recorder.report({"step": step})
        clock[0] += 1.0
    # After a one-second write the next waits 1 / 5% = 20 s, not 5.
    assert written == [1, 21]


def test_latest_checkpoint_skips_incomplete_ones(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    for step in (2, 10, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-12" / ".incomplete").touch()
    (tmp_path / "not-a-checkpoint").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def test_check_cancelled_raises_only_when_asked():
    check_cancelled(None, 1)
    check_cancelled(lambda: False, 1)
    with pytest.raises(RunCancelled) as cancelled:
        check_cancelled(lambda: True, 7)
    assert cancelled.value.step == 7
