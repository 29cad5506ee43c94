"""Training jobs run end to end on a real Celery worker with the tiny model; artifacts load."""

import pytest

from feedback import services
from feedback.models import Completion, ModelVersion, PreferencePair
from feedback.models.prompts import is_cut_off
from feedback.services.exports import export_pairs_to_file
from tests.conftest import wait_for
from training import jobs
from training.engine.tiny import demo_prompts
from training.models import TrainingJob

pytestmark = pytest.mark.slow


def finished(job_id: int) -> TrainingJob | None:
    job = TrainingJob.objects.get(pk=job_id)
    return job if job.status in ("succeeded", "failed", "cancelled") else None


def test_generate_and_reward_jobs_on_a_real_worker(
    celery_worker_process, project, tiny_base, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path  # where this process writes the export the worker reads
    base = services.create_model_version(project_id=project.pk, name="tiny", base_model=tiny_base)
    prompts = [
        services.create_prompt(project_id=project.pk, text=text) for text in demo_prompts()[:4]
    ]

    job = jobs.queue_job(
        kind="generate",
        model_version_id=base.pk,
        config={
            "prompt_ids": [p.pk for p in prompts],
            "samples_per_prompt": 2,
            "generation": {"max_new_tokens": 16},
        },
    )
    done = wait_for(lambda: finished(job.pk), timeout=180)
    assert done.status == "succeeded", done.error + done.log_tail
    samples = Completion.objects.filter(model_version=base)
    assert samples.count() == 8
    assert all(sample.token_count and sample.text for sample in samples)
    # Each says why it stopped; one stopped at the token limit holds all 16 new tokens.
    assert {s.generation_settings["finish_reason"] for s in samples} <= {"stop", "length"}
    assert all(
        s.token_count == 16
        for s in samples
        if is_cut_off(s.generation_settings.get("finish_reason"))
    )

    # Preference pairs: answers with "apple" beat answers without.
    for prompt in prompts:
        good = services.create_completion(prompt_id=prompt.pk, text="the cat finds a red apple .")
        bad = services.create_completion(prompt_id=prompt.pk, text="the cat finds cold water .")
        PreferencePair.objects.create(
            project=project, prompt=prompt, chosen=good, rejected=bad, margin=1.0
        )
    snapshot, _ = export_pairs_to_file(project_id=project.pk)
    job = jobs.queue_job(
        kind="reward_model",
        model_version_id=base.pk,
        snapshot_id=snapshot.pk,
        config={
            "hyperparameters": {
                "max_steps": 4,
                "batch_size": 4,
                "checkpoint_every": 2,
                "eval_fraction": 0.25,
            }
        },
    )
    done = wait_for(lambda: finished(job.pk), timeout=300)
    assert done.status == "succeeded", done.error + done.log_tail
    assert done.progress == 100.0
    assert [row["step"] for row in done.metrics_history][-1] == 4
    reward_version = ModelVersion.objects.get(pk=done.result_version_id)
    assert (reward_version.method, reward_version.parent_id, reward_version.data_snapshot_id) == (
        "reward_model",
        base.pk,
        snapshot.pk,
    )

    from training.engine.reward import load_reward_model

    scores = load_reward_model(reward_version.adapter_path).score(
        ["<|user|>hi<|assistant|>the cat ."]
    )
    assert len(scores) == 1
