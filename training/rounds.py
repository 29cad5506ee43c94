"""Alignment rounds: a state machine from sampling, through annotation and training, to evaluation.

    generating -> annotating -> [training_reward ->] training_policy -> evaluating -> done

Each training state is carried out by one TrainingJob; `on_job_finished` moves the round on when its
job ends. Any state can fail or be cancelled, and `resume_round` re-runs the step it stopped in (a
training job resumes from its checkpoints).
"""

from pathlib import Path

from django.db import transaction
from django.db.models import Max

from feedback import services as feedback_services
from feedback.errors import ServiceError
from feedback.models import (
    AnnotationTask,
    Assignment,
    Judgment,
    ModelVersion,
    Project,
    PromptSet,
)
from feedback.models.prompts import ModelStatus, PromptSplit
from feedback.models.tasks import AssignmentStatus, TaskStatus
from training import jobs
from training.hyperparameters import check_hyperparameters, project_defaults
from training.models import AlignmentRound, JobKind, JobStatus, RoundMethod, RoundState, TrainingJob

# Samples per held-out prompt when evaluating a new version: enough for a steady KL estimate.
EVALUATION_SAMPLES_PER_PROMPT = 4
ACTIVE_STATES = (
    RoundState.GENERATING,
    RoundState.ANNOTATING,
    RoundState.TRAINING_REWARD,
    RoundState.TRAINING_POLICY,
    RoundState.EVALUATING,
)
# The job kinds that carry out each state's step.
STEP_JOBS = {
    RoundState.GENERATING: (JobKind.GENERATE,),
    RoundState.TRAINING_REWARD: (JobKind.REWARD_MODEL,),
    RoundState.TRAINING_POLICY: (JobKind.DPO, JobKind.PPO),
    RoundState.EVALUATING: (JobKind.EVALUATE,),
}


@transaction.atomic
def launch_round(
    *,
    project_id: int,
    policy_id: int,
    prompt_set_id: int,
    method: str,
    hyperparameters: dict | None = None,
    samples_per_prompt: int = 2,
    judgments_wanted: int | None = None,
    mix_parent_outputs: bool = False,
    created_by_id: int | None = None,
) -> AlignmentRound:
    """Start a round: the policy samples the prompt set, then annotators judge the samples."""
    if method not in RoundMethod.values:
        raise ServiceError(f"Method must be one of {', '.join(RoundMethod.values)}.")
    policy = ModelVersion.objects.filter(pk=policy_id, project_id=project_id).first()
    if policy is None:
        raise ServiceError("The policy model version is not in this project.", code="not_found")
    if not policy.base_model or policy.status != ModelStatus.READY:
        raise ServiceError(f"Model version {policy.name!r} is not a ready, trainable model.")
    prompt_set = PromptSet.objects.filter(pk=prompt_set_id, project_id=project_id).first()
    if prompt_set is None:
        raise ServiceError("The prompt set is not in this project.", code="not_found")
    prompt_ids = list(
        prompt_set.prompts.filter(split=PromptSplit.TRAIN)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not prompt_ids:
        raise ServiceError(f"Prompt set {prompt_set.name!r} has no training prompts.")
    if samples_per_prompt < 2:
        raise ServiceError(
            "Sample at least 2 completions per prompt, so there is something to compare."
        )
    merged = check_hyperparameters(
        method, hyperparameters or {}, base=project_defaults(project_id, method)
    )
    project = policy.project
    tasks_per_prompt = 1 if use_ranking(project, samples_per_prompt) else samples_per_prompt // 2
    wanted = judgments_wanted or len(prompt_ids) * tasks_per_prompt * project.overlap
    if wanted < 1:
        raise ServiceError("A round wants at least one judgment.")
    # Rounds are numbered per project: two launches at once must not both take the next number.
    Project.objects.select_for_update().filter(pk=project_id).first()
    number = (
        AlignmentRound.objects.filter(project_id=project_id).aggregate(n=Max("number"))["n"] or 0
    ) + 1
    round_ = AlignmentRound.objects.create(
        project_id=project_id,
        number=number,
        policy=policy,
        prompt_set=prompt_set,
        method=method,
        hyperparameters=merged,
        samples_per_prompt=samples_per_prompt,
        judgments_wanted=wanted,
        mix_parent_outputs=mix_parent_outputs,
        state=RoundState.GENERATING,
        created_by_id=created_by_id,
    )
    queue_generation(round_, prompt_ids)
    return round_


def use_ranking(project, samples_per_prompt: int) -> bool:
    return samples_per_prompt > 2 and project.ranking_enabled


def queue_generation(round_: AlignmentRound, prompt_ids: list[int]) -> TrainingJob:
    return jobs.queue_job(
        kind=JobKind.GENERATE,
        model_version_id=round_.policy_id,
        alignment_round_id=round_.pk,
        created_by_id=round_.created_by_id,
        config={
            "prompt_ids": prompt_ids,
            "samples_per_prompt": round_.samples_per_prompt,
            "generation": round_.hyperparameters.get("generation", {}),
        },
    )


def open_tasks_for_samples(job: TrainingJob, prompts, completions) -> list[int]:
    """Annotation tasks over a round's fresh samples (pairwise pairs, or one ranking per prompt),
    plus a new-versus-parent pairwise task per prompt when the round mixes in parent outputs."""
    round_ = job.alignment_round
    if round_ is None:
        return []
    project = round_.project
    by_prompt: dict[int, list[int]] = {}
    for completion in completions:
        by_prompt.setdefault(completion.prompt_id, []).append(completion.pk)
    parent = round_.policy.parent if round_.mix_parent_outputs else None
    task_ids = []
    for prompt in prompts:
        samples = by_prompt.get(prompt.pk, [])
        if use_ranking(project, len(samples)):
            groups, mode = [samples[:9]], "ranking"
        else:
            groups, mode = [samples[i : i + 2] for i in range(0, len(samples) - 1, 2)], "pairwise"
        if parent is not None and samples:
            older = (
                parent.completions.filter(prompt=prompt)
                .order_by("-pk")
                .values_list("pk", flat=True)
                .first()
            )
            if older:
                groups.append([samples[0], older])
        for group in groups:
            task = feedback_services.create_task(
                prompt_id=prompt.pk,
                completion_ids=group,
                mode="pairwise" if len(group) == 2 else mode,
                alignment_round_id=round_.pk,
            )
            task_ids.append(task.pk)
    return task_ids


def judgments_collected(round_: AlignmentRound) -> int:
    return Judgment.objects.filter(task__alignment_round=round_).count()


def is_current_step(round_: AlignmentRound, job: TrainingJob) -> bool:
    """Whether `job` is the step the round is on: its newest job, of the state's kind. Another
    (a step run twice, or one that ended after the round moved on) moves nothing."""
    latest = round_.jobs.order_by("-created_at", "-pk").values_list("pk", flat=True).first()
    return latest == job.pk and job.kind in STEP_JOBS.get(round_.state, ())


def on_job_finished(job: TrainingJob) -> None:
    """Move the job's round on (or stop it) now that the job has ended."""
    if job.alignment_round_id is None:
        return
    with transaction.atomic():
        round_ = AlignmentRound.objects.select_for_update().get(pk=job.alignment_round_id)
        if round_.state not in ACTIVE_STATES or not is_current_step(round_, job):
            return
        if job.status == JobStatus.FAILED:
            stop(round_, RoundState.FAILED, job.error or f"{job.get_kind_display()} job failed.")
            return
        if job.status == JobStatus.CANCELLED:
            stop(round_, RoundState.CANCELLED, "")
            return
        if job.status == JobStatus.SUCCEEDED:
            step_done(round_, job)


def step_done(round_: AlignmentRound, job: TrainingJob) -> None:
    """The round's next state, and its next job, once `job` (its current step) succeeded."""
    if job.kind == JobKind.GENERATE:
        set_state(round_, RoundState.ANNOTATING)
    elif job.kind == JobKind.REWARD_MODEL:
        round_.reward_model_id = job.result_version_id
        set_state(round_, RoundState.TRAINING_POLICY, ["reward_model"])
        queue_policy_training(round_)
    elif job.kind in (JobKind.DPO, JobKind.PPO):
        round_.result_version_id = job.result_version_id
        set_state(round_, RoundState.EVALUATING, ["result_version"])
        queue_evaluation(round_)
    elif job.kind == JobKind.EVALUATE:
        round_.evaluation = job.artifacts.get("evaluation", {})
        set_state(round_, RoundState.DONE, ["evaluation"])


def set_state(round_: AlignmentRound, state: str, fields: list[str] | None = None) -> None:
    round_.state = state
    round_.save(update_fields=["state", "updated_at", *(fields or [])])


def stop(round_: AlignmentRound, state: str, error: str) -> None:
    round_.failed_state = round_.state
    round_.error = error
    set_state(round_, state, ["failed_state", "error"])


def advance_annotating_rounds() -> list[int]:
    """Start training for every annotating round whose judgment quota is met. One that cannot
    (its judgments made no pairs: all ties, say) fails with the reason, and the others move on."""
    moved = []
    for round_id in AlignmentRound.objects.filter(state=RoundState.ANNOTATING).values_list(
        "pk", flat=True
    ):
        round_ = AlignmentRound.objects.get(pk=round_id)
        if judgments_collected(round_) >= round_.judgments_wanted:
            try:
                start_training(round_id)
            except ServiceError as error:
                with transaction.atomic():
                    round_ = AlignmentRound.objects.select_for_update().get(pk=round_id)
                    if round_.state == RoundState.ANNOTATING:
                        stop(round_, RoundState.FAILED, error.message)
                continue
            moved.append(round_id)
    return moved


@transaction.atomic
def start_training(round_id: int, *, by_user_id: int | None = None) -> AlignmentRound:
    """Leave annotation (at the quota, or early when an admin moves the round on) and train."""
    from feedback.pairs import PairPolicy
    from feedback.services.exports import ExportFilters, export_pairs_to_file
    from feedback.services.pairs import derive_pairs

    round_ = AlignmentRound.objects.select_for_update().get(pk=round_id)
    if round_.state != RoundState.ANNOTATING:
        raise ServiceError(
            f"Round {round_.number} is {round_.get_state_display().lower()}, not annotating."
        )
    policy = PairPolicy()
    derive_pairs(project_id=round_.project_id, policy=policy)
    snapshot, _ = export_pairs_to_file(
        project_id=round_.project_id,
        filters=ExportFilters(alignment_round_id=round_.pk, policies=(policy.name,)),
        margin=True,
        user_id=by_user_id,
    )
    if snapshot.row_count == 0:
        Path(snapshot.path).unlink(missing_ok=True)  # the transaction forgets the snapshot
        raise ServiceError(
            "No preference pairs yet: the round's judgments made none (ties and 'both bad' "
            "answers make no pair); collect more before training."
        )
    AnnotationTask.objects.filter(alignment_round=round_, status=TaskStatus.OPEN).update(
        status=TaskStatus.ARCHIVED
    )
    # Leases held on them go too: the queue would keep serving such a task to its holder, and
    # the answer would land after the snapshot the round trains on.
    Assignment.objects.filter(
        task__alignment_round=round_,
        task__status=TaskStatus.ARCHIVED,
        status=AssignmentStatus.LEASED,
    ).delete()
    round_.snapshot = snapshot
    if round_.method == RoundMethod.PPO:
        set_state(round_, RoundState.TRAINING_REWARD, ["snapshot"])
        jobs.queue_job(
            kind=JobKind.REWARD_MODEL,
            model_version_id=round_.policy_id,
            snapshot_id=snapshot.pk,
            alignment_round_id=round_.pk,
            config={"hyperparameters": round_.hyperparameters["reward"]},
        )
    else:
        set_state(round_, RoundState.TRAINING_POLICY, ["snapshot"])
        queue_policy_training(round_)
    return round_


def queue_policy_training(round_: AlignmentRound) -> TrainingJob:
    if round_.method == RoundMethod.DPO:
        return jobs.queue_job(
            kind=JobKind.DPO,
            model_version_id=round_.policy_id,
            snapshot_id=round_.snapshot_id,
            alignment_round_id=round_.pk,
            config={"hyperparameters": round_.hyperparameters["dpo"]},
        )
    prompt_ids = list(
        round_.prompt_set.prompts.filter(split=PromptSplit.TRAIN).values_list("pk", flat=True)
    )
    return jobs.queue_job(
        kind=JobKind.PPO,
        model_version_id=round_.policy_id,
        snapshot_id=round_.snapshot_id,
        alignment_round_id=round_.pk,
        config={
            "hyperparameters": round_.hyperparameters["ppo"],
            "reward_model_version_id": round_.reward_model_id,
            "prompt_ids": prompt_ids,
        },
    )


def evaluation_prompt_ids(round_: AlignmentRound) -> list[int]:
    held_out = list(
        round_.project.prompts.filter(split=PromptSplit.HELD_OUT)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return held_out or list(round_.prompt_set.prompts.order_by("pk").values_list("pk", flat=True))


def queue_evaluation(round_: AlignmentRound) -> TrainingJob:
    return jobs.queue_job(
        kind=JobKind.EVALUATE,
        model_version_id=round_.result_version_id,
        alignment_round_id=round_.pk,
        config={
            "prompt_ids": evaluation_prompt_ids(round_),
            "samples_per_prompt": EVALUATION_SAMPLES_PER_PROMPT,
            "generation": round_.hyperparameters.get("generation", {}),
            "reward_model_version_id": round_.reward_model_id,
        },
    )


@transaction.atomic
def cancel_round(round_id: int) -> AlignmentRound:
    round_ = AlignmentRound.objects.select_for_update().get(pk=round_id)
    if round_.state not in ACTIVE_STATES:
        raise ServiceError(f"Round {round_.number} is not running ({round_.get_state_display()}).")
    for job_id in round_.jobs.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).values_list(
        "pk", flat=True
    ):
        jobs.request_cancel(job_id)
    stop(round_, RoundState.CANCELLED, "")
    return round_


@transaction.atomic
def resume_round(round_id: int) -> AlignmentRound:
    """Go back to the state a failed or cancelled round stopped in and re-run its step."""
    round_ = AlignmentRound.objects.select_for_update().get(pk=round_id)
    if round_.state not in (RoundState.FAILED, RoundState.CANCELLED) or not round_.failed_state:
        raise ServiceError(f"Round {round_.number} has nothing to resume.")
    state = round_.failed_state
    round_.failed_state = ""
    round_.error = ""
    set_state(round_, state, ["failed_state", "error"])
    if state == RoundState.ANNOTATING:
        return round_
    last = round_.jobs.order_by("-created_at", "-pk").first()
    # `last` is the round's newest job: the step it is on if it is of the state's kind.
    if last is None or last.kind not in STEP_JOBS.get(round_.state, ()):
        return round_
    if last.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        jobs.resume(last.pk)
    elif last.status == JobStatus.SUCCEEDED:
        # It finished while the round was stopped (sampling does not stop for a cancel): go on.
        step_done(round_, last)
    else:  # still queued or running: let it finish, and move the round on then
        TrainingJob.objects.filter(pk=last.pk).update(cancel_requested=False)
    return round_


@transaction.atomic
def cancel_job(job_id: int) -> TrainingJob:
    """Stop a queued or running job. One that works for a running round stops the round with it:
    a round's steps only make sense together, and the round would otherwise wait on a job that
    never ends well. A job that has ended is refused, whatever its round is doing."""
    job = job_or_404(job_id)
    round_ = job.alignment_round
    live = job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    if live and round_ is not None and round_.state in ACTIVE_STATES:
        cancel_round(round_.pk)
    else:
        jobs.request_cancel(job.pk)
    job.refresh_from_db()
    return job


@transaction.atomic
def resume_job(job_id: int) -> TrainingJob:
    """Queue a failed or cancelled job again, from its newest checkpoint; a round's job resumes
    with its round, and only while it is the round's latest step."""
    job = job_or_404(job_id)
    round_ = job.alignment_round
    if round_ is None:
        return jobs.resume(job.pk)
    latest = round_.jobs.order_by("-created_at", "-pk").first()
    if latest.pk != job.pk:
        raise ServiceError(
            f"Round {round_.number} has moved past job #{job.pk}; resume the round instead.",
            code="conflict",
        )
    resume_round(round_.pk)
    job.refresh_from_db()
    return job


def job_or_404(job_id: int) -> TrainingJob:
    job = TrainingJob.objects.select_related("alignment_round").filter(pk=job_id).first()
    if job is None:
        raise ServiceError(f"No training job with id {job_id}.", code="not_found")
    return job


@transaction.atomic
def next_round(round_id: int, *, created_by_id: int | None = None) -> AlignmentRound:
    """Launch the following round from a finished round's new version, with the same settings;
    once (a second press, or a retried request, gets the round launched first)."""
    round_ = AlignmentRound.objects.select_for_update().get(pk=round_id)
    if round_.state != RoundState.DONE or round_.result_version_id is None:
        raise ServiceError("Only a finished round with a new version can be followed by another.")
    following = AlignmentRound.objects.filter(
        project_id=round_.project_id, policy_id=round_.result_version_id, pk__gt=round_.pk
    ).first()
    if following is not None:
        raise ServiceError(
            f"Round {round_.number} has been followed already, by round {following.number}.",
            code="conflict",
        )
    return launch_round(
        project_id=round_.project_id,
        policy_id=round_.result_version_id,
        prompt_set_id=round_.prompt_set_id,
        method=round_.method,
        hyperparameters=round_.hyperparameters,
        samples_per_prompt=round_.samples_per_prompt,
        judgments_wanted=round_.judgments_wanted,
        mix_parent_outputs=round_.mix_parent_outputs,
        created_by_id=created_by_id,
    )
