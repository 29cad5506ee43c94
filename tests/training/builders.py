"""Small builders for the training page tests: versions, prompt sets, rounds in any state, judgments."""

from __future__ import annotations

import itertools

from feedback import services
from feedback.models import Judgment, ModelVersion, PromptSet
from training.hyperparameters import default_hyperparameters
from training.models import AlignmentRound, RoundState

_counter = itertools.count(1)


def make_version(project, name: str | None = None, **fields) -> ModelVersion:
    fields.setdefault("base_model", "tiny-base")
    return services.create_model_version(
        project_id=project.pk, name=name or f"version-{next(_counter)}", **fields
    )


def trained_version(project, parent, name: str | None = None, **fields) -> ModelVersion:
    """A version a DPO job of the project trained from `parent`, its adapter folder made (empty)
    in the job's folder, where the runner writes it."""
    from training.jobs import job_output_dir
    from training.models import TrainingJob

    job = TrainingJob.objects.create(
        project=project, kind="dpo", model_version=parent, status="succeeded"
    )
    adapter = job_output_dir(job) / "adapter"
    adapter.mkdir(parents=True)
    version = make_version(
        project, name, parent_id=parent.pk, method="dpo", adapter_path=str(adapter), **fields
    )
    TrainingJob.objects.filter(pk=job.pk).update(result_version=version)
    return version


def make_prompt_set(project, n: int = 3, name: str | None = None, split: str = "train"):
    """A prompt set of `n` fresh prompts; returns (prompt_set, prompts)."""
    prompts = [
        services.create_prompt(
            project_id=project.pk, text=f"Question {next(_counter)}?", split=split
        )
        for _ in range(n)
    ]
    prompt_set = PromptSet.objects.create(project=project, name=name or f"set-{next(_counter)}")
    prompt_set.prompts.add(*prompts)
    return prompt_set, prompts


def answer(prompt, version, text: str | None = None):
    return services.create_completion(
        prompt_id=prompt.pk,
        model_version_id=version.pk,
        text=text or f"{version.name} on {prompt.pk}",
    )


def make_round(
    project, policy, prompt_set, *, state=RoundState.GENERATING, **fields
) -> AlignmentRound:
    """A round row in any state, without queueing jobs (for pages that only read rounds)."""
    fields.setdefault("method", "dpo")
    fields.setdefault("hyperparameters", default_hyperparameters(fields["method"]))
    fields.setdefault("judgments_wanted", 4)
    number = AlignmentRound.objects.filter(project=project).count() + 1
    return AlignmentRound.objects.create(
        project=project, number=number, policy=policy, prompt_set=prompt_set, state=state, **fields
    )


def judge(task, annotator, choice: str) -> Judgment:
    """A pairwise judgment written directly (the queue's leases are not what these tests are about)."""
    return Judgment.objects.create(
        task=task,
        annotator=annotator,
        kind="pairwise",
        choice=choice,
        shown_order=list(task.items.values_list("completion_id", flat=True)),
        idempotency_key=f"k{next(_counter)}",
    )
