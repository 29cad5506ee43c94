"""Carry out a TrainingJob: read its inputs from the database, run the engine, write the outcome.

The engine knows nothing of Django; this module translates rows into engine dataclasses and
engine results into Completions, AnnotationTasks and ModelVersions.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction

from feedback import services as feedback_services
from feedback.models import Completion, ModelVersion, Prompt
from feedback.models.prompts import ModelMethod, ModelStatus
from feedback.services.projects import storable_text
from training import jobs, rounds
from training.engine import config as engine_config
from training.engine.examples import PreferencePair
from training.engine.runs import HistoryWrites, RunCancelled
from training.hyperparameters import build_engine_config
from training.models import JobKind, TrainingJob

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 1.0
# Well inside jobs.HEARTBEAT_TIMEOUT (10 min).
HEARTBEAT_SECONDS = 60.0
# The job row's history is rewritten whole (192 ms at 3,000 reports on PostgreSQL), so reports
# are written in batches on a HistoryWrites schedule, not one a step.
METRICS_FLUSH_SECONDS = 2.0
# Prompt ids per query: a statement takes at most 65,535 parameters, and a job may name more.
PROMPT_CHUNK = 10_000


class JobReporter:
    """The engine's callbacks for one job: metrics with progress, written in batches (every couple
    of seconds, less often once a long history makes the write slow), and a throttled cancel
    check. `flush` writes what is left when the run ends."""

    def __init__(self, job: TrainingJob, total_steps: int | None):
        self.job_id = job.pk
        self.total_steps = total_steps
        self._last_poll = 0.0
        self._cancelled = False
        self._pending: list[dict] = []
        self._progress: float | None = None
        self._writes = HistoryWrites(METRICS_FLUSH_SECONDS)

    def on_metrics(self, metrics: dict) -> None:
        step, total = metrics.get("step"), self.total_steps or metrics.get("total_steps")
        if step and total:
            self._progress = 100.0 * step / total
        self._pending.append(metrics)
        if self._writes.due():
            self.flush()

    def flush(self) -> None:
        with self._writes.timed():
            if self._pending:
                jobs.record_metrics(self.job_id, *self._pending, progress=self._progress)
                self._pending = []

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = now
            self._cancelled = jobs.is_cancel_requested(self.job_id)
        return self._cancelled


@contextmanager
def heartbeats(job: TrainingJob) -> Iterator[None]:
    """Beat the job's heart from a thread while it runs: sampling a large prompt set, or merging
    an adapter, is one long call that reports nothing, and the dead-worker check would fail a
    job that is only busy."""
    stopped = threading.Event()

    def beat() -> None:
        while not stopped.wait(HEARTBEAT_SECONDS):
            try:
                jobs.beat(job.pk, job.attempts)
            except Exception:  # a missed beat is retried; the run itself must go on
                logger.exception("Heartbeat of training job %s failed", job.pk)
            finally:
                connections.close_all()  # the thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def run_job(job_id: int) -> None:
    """Entry point of the Celery task. Never raises for a job's own failure: it is recorded."""
    job = jobs.start(job_id)
    if job is None:
        return
    runner, attempt = RUNNERS[job.kind], job.attempts
    try:
        with heartbeats(job):
            artifacts, result_version_id = runner(job)
    except RunCancelled:
        ended = jobs.finish_run_cancelled(job_id, attempt)
    except Exception as error:  # the job's failure is recorded and shown; the worker lives on
        ended = jobs.finish_failed(job_id, error, attempt=attempt)
    else:
        ended = jobs.finish_succeeded(
            job_id, artifacts=artifacts, result_version_id=result_version_id, attempt=attempt
        )
    if ended is not None:
        rounds.on_job_finished(ended)


def engine_prompt(prompt: Prompt | str | list):
    """A prompt as the engine takes it: always a chat, so the model's chat template frames it
    (a plain-text prompt is one user message), exactly as in training and in sampling."""
    if isinstance(prompt, Prompt):
        prompt = prompt.messages or prompt.text
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def starting_point(version: ModelVersion) -> str:
    """Base weights a child of `version` trains on: the version's adapter merged into its base."""
    if not version.adapter_path:
        return version.base_model
    from training.engine.policy import merge_adapter

    target = settings.ARTIFACT_ROOT / "merged" / f"version-{version.pk}"
    return str(merge_adapter(version.base_model, version.adapter_path, target))


def hyperparameters(job: TrainingJob, config_class):
    """The job's hyperparameters as the engine's config dataclass, trained from the job's version."""
    values = job.config.get("hyperparameters", {})
    return build_engine_config(config_class, values, base_model=starting_point(job.model_version))


def load_pairs(job: TrainingJob) -> list[PreferencePair]:
    """Preference pairs from the job's export snapshot (TRL standard or conversational JSONL)."""
    from feedback.services.exports import materialise_snapshot

    if job.snapshot_id is None:
        raise ValueError("This job names no export snapshot to train on.")
    pairs = []
    with open(materialise_snapshot(job.snapshot_id), encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            pairs.append(
                PreferencePair(
                    prompt=engine_prompt(row["prompt"]),
                    chosen=response_text(row["chosen"]),
                    rejected=response_text(row["rejected"]),
                    margin=row.get("margin"),
                )
            )
    if not pairs:
        raise ValueError(f"Export snapshot #{job.snapshot_id} holds no pairs.")
    return pairs


def response_text(response) -> str:
    return response[-1]["content"] if isinstance(response, list) else response


def register_version(
    job: TrainingJob, method: str, adapter_dir: Path, base_model: str, metrics: dict
) -> int:
    parent = job.model_version
    round_ = job.alignment_round
    suffix = f"r{round_.number}-{method}" if round_ else f"{method}-{job.pk}"
    version = feedback_services.create_model_version(
        project_id=job.project_id,
        name=f"{parent.name}-{suffix}"[:200],
        base_model=base_model,
        adapter_path=str(adapter_dir),
        parent_id=parent.pk,
        method=method,
        hyperparameters=job.config.get("hyperparameters", {}),
        metrics=metrics,
        status=ModelStatus.READY,
        alignment_round_id=round_.pk if round_ else None,
        data_snapshot_id=job.snapshot_id,
    )
    return version.pk


def train_version(job: TrainingJob, method: str, config, train, *inputs, total_steps, **reward):
    """Run one engine training function for `job` and register its adapter as a new version."""
    reporter = JobReporter(job, total_steps)
    try:
        result = train(
            config,
            *inputs,
            jobs.job_output_dir(job),
            **reward,
            on_metrics=reporter.on_metrics,
            should_cancel=reporter.should_cancel,
        )
    finally:
        reporter.flush()
    version_id = register_version(
        job, method, result.adapter_dir, config.base_model, result.final_metrics
    )
    return {"adapter_dir": str(result.adapter_dir), "metrics": str(result.metrics_path)}, version_id


def run_reward_model(job: TrainingJob):
    from training.engine.reward import train_reward_model

    config = hyperparameters(job, engine_config.RewardRunConfig)
    return train_version(
        job,
        ModelMethod.REWARD_MODEL,
        config,
        train_reward_model,
        load_pairs(job),
        total_steps=config.max_steps,
    )


def run_dpo(job: TrainingJob):
    from training.engine.dpo import train_dpo

    config = hyperparameters(job, engine_config.DPORunConfig)
    return train_version(
        job, ModelMethod.DPO, config, train_dpo, load_pairs(job), total_steps=config.max_steps
    )


def prompts_of(job: TrainingJob) -> list[Prompt]:
    """The prompts the job's config names, read a chunk of ids at a time."""
    ids = job.config["prompt_ids"]
    return [
        prompt
        for start in range(0, len(ids), PROMPT_CHUNK)
        for prompt in Prompt.objects.filter(pk__in=ids[start : start + PROMPT_CHUNK])
    ]


def run_ppo(job: TrainingJob):
    from training.engine.ppo import train_ppo

    config = hyperparameters(job, engine_config.PPORunConfig)
    reward_version = ModelVersion.objects.get(pk=job.config["reward_model_version_id"])
    prompts = [engine_prompt(p) for p in prompts_of(job)]
    return train_version(
        job,
        ModelMethod.PPO,
        config,
        train_ppo,
        prompts,
        total_steps=config.total_steps,
        reward_model_path=reward_version.adapter_path,
    )


def generation_settings(job: TrainingJob, num_samples: int) -> engine_config.GenerationSettings:
    return engine_config.GenerationSettings(
        **{**job.config.get("generation", {}), "num_samples": num_samples}
    )


def sample_version(version: ModelVersion, prompts: list[Prompt], settings_, seed: int):
    from training.engine.policy import load_policy, sample
    from training.engine.runs import seed_everything

    seed_everything(seed)
    policy = load_policy(version.base_model, version.adapter_path or None)
    return sample(policy, [engine_prompt(p) for p in prompts], settings_)


def store_samples(version: ModelVersion, prompts, generations, settings_: dict) -> list[Completion]:
    """Save sampled responses as the version's completions of the prompts they answer, each with
    why it stopped: "stop" at an end of sequence, "length" at the token limit."""
    return Completion.objects.bulk_create(
        Completion(
            prompt=prompts[index],
            model_version=version,
            text=storable_text(text),
            token_count=tokens,
            generation_settings={**settings_, "finish_reason": "stop" if eos else "length"},
        )
        for index, text, tokens, eos in zip(
            generations.prompt_indices,
            generations.texts,
            generations.token_counts,
            generations.has_eos,
            strict=True,
        )
    )


def run_generate(job: TrainingJob):
    """Sample completions from the job's version; optionally open annotation tasks over them."""
    prompts = sorted(prompts_of(job), key=lambda prompt: prompt.pk)
    if not prompts:
        raise ValueError("No prompts to generate for.")
    n = int(job.config.get("samples_per_prompt", 2))
    settings_ = generation_settings(job, n)
    jobs.append_log(job.pk, f"Sampling {n} completions for each of {len(prompts)} prompts.")
    generations = sample_version(job.model_version, prompts, settings_, job.config.get("seed", 0))
    jobs.record_metrics(
        job.pk, {"step": 1, "new_tokens": sum(generations.token_counts)}, progress=80.0
    )
    with transaction.atomic():
        created = store_samples(
            job.model_version,
            prompts,
            generations,
            {**job.config.get("generation", {}), "job": job.pk},
        )
        task_ids = rounds.open_tasks_for_samples(job, prompts, created)
    return {"completions": len(created), "tasks": len(task_ids)}, None


def answer_for_parent(job: TrainingJob, parent: ModelVersion | None, prompts, settings_) -> None:
    """Sample the parent on the held-out prompts it has not answered, so the two versions can be
    compared side by side (and judged blind) as soon as the round is done."""
    if parent is None or not parent.base_model:
        return
    answered = set(
        parent.completions.filter(prompt__in=prompts).values_list("prompt_id", flat=True)
    )
    missing = [prompt for prompt in prompts if prompt.pk not in answered]
    if not missing:
        return
    generations = sample_version(parent, missing, settings_, job.config.get("seed", 0))
    store_samples(parent, missing, generations, {"job": job.pk, "purpose": "evaluation"})


def run_evaluate(job: TrainingJob):
    """Sample the new version on held-out prompts; record reward score and KL to the parent."""
    from training.engine.policy import kl_to_parent, load_policy, sample
    from training.engine.runs import seed_everything

    version = job.model_version
    prompts = sorted(prompts_of(job), key=lambda prompt: prompt.pk)
    settings_ = generation_settings(job, int(job.config.get("samples_per_prompt", 1)))
    seed_everything(job.config.get("seed", 0))
    policy = load_policy(version.base_model, version.adapter_path or None)
    generations = sample(policy, [engine_prompt(p) for p in prompts], settings_)
    store_samples(version, prompts, generations, {"job": job.pk, "purpose": "evaluation"})
    answer_for_parent(job, version.parent, prompts, settings_)
    metrics = {
        "eval_prompts": len(prompts),
        "mean_new_tokens": sum(generations.token_counts) / len(generations.texts),
        "eos_fraction": sum(generations.has_eos) / len(generations.texts),
    }
    if version.adapter_path:
        # A child trains on its parent's merged weights, so the bare base *is* the parent unless
        # both share a base model (then the parent's own adapter is loaded for comparison).
        parent = version.parent
        same_base = parent is not None and parent.base_model == version.base_model
        metrics["kl_to_parent"] = kl_to_parent(
            policy,
            generations,
            parent.adapter_path if same_base and parent.adapter_path else None,
            temperature=settings_.temperature,
        )
    reward_id = job.config.get("reward_model_version_id")
    if reward_id:
        from training.engine.generation import render_prompt
        from training.engine.reward import load_reward_model

        reward_model = load_reward_model(ModelVersion.objects.get(pk=reward_id).adapter_path)
        texts = [
            render_prompt(reward_model.tokenizer, engine_prompt(prompts[index])) + text
            for index, text in zip(generations.prompt_indices, generations.texts, strict=True)
        ]
        scores = reward_model.score(texts)
        metrics["reward_mean"] = sum(scores) / len(scores)
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(
            metrics={**version.metrics, "evaluation": metrics}
        )
    jobs.record_metrics(job.pk, {"step": 1, **metrics}, progress=100.0)
    return {"evaluation": metrics}, None


RUNNERS = {
    JobKind.GENERATE: run_generate,
    JobKind.REWARD_MODEL: run_reward_model,
    JobKind.DPO: run_dpo,
    JobKind.PPO: run_ppo,
    JobKind.EVALUATE: run_evaluate,
}
