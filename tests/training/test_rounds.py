"""The round state machine: every transition, failure, cancel and resume, with jobs faked."""

import pytest

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask, Completion, PromptSet
from feedback.simulation import prefers_word, simulate_annotator
from training import jobs, rounds
from training.demo import DEMO_ROUND_DEFAULTS
from training.hyperparameters import check_round_defaults, default_hyperparameters, project_defaults
from training.models import AlignmentRound, RoundDefaults, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Job ids sent to Celery, in order, instead of a worker."""
    sent: list[int] = []
    monkeypatch.setattr(jobs, "dispatch", lambda job: sent.append(job.pk))
    return sent


@pytest.fixture
def setup(project):
    policy = services.create_model_version(
        project_id=project.pk, name="base", base_model="/models/tiny"
    )
    prompt_set = PromptSet.objects.create(project=project, name="train")
    prompts = [services.create_prompt(project_id=project.pk, text=f"q{i}") for i in range(3)]
    prompt_set.prompts.set(prompts)
    return policy, prompt_set, prompts


def launch(project, setup, method="dpo", **kwargs):
    policy, prompt_set, _ = setup
    return rounds.launch_round(
        project_id=project.pk,
        policy_id=policy.pk,
        prompt_set_id=prompt_set.pk,
        method=method,
        **kwargs,
    )


def succeed(job_id: int, **artifacts) -> TrainingJob:
    job = jobs.finish_succeeded(
        job_id,
        artifacts=artifacts.get("artifacts", {}),
        result_version_id=artifacts.get("result_version_id"),
    )
    rounds.on_job_finished(job)
    return job


def fake_samples(job: TrainingJob, prompts) -> None:
    """What the generate runner does, without a model: two samples per prompt, one with 'apple'."""
    created = []
    for prompt in prompts:
        for text in ("an apple", "some water"):
            created.append(
                Completion.objects.create(prompt=prompt, model_version=job.model_version, text=text)
            )
    rounds.open_tasks_for_samples(job, prompts, created)


def test_launch_validates_and_shows_defaults(project, setup, queued):
    with pytest.raises(ServiceError, match="Unknown dpo hyperparameters: warp"):
        launch(project, setup, hyperparameters={"dpo": {"warp": 9}})
    with pytest.raises(ServiceError, match="Bad dpo hyperparameters"):
        launch(project, setup, hyperparameters={"dpo": {"lora": {"rank": 0}}})
    with pytest.raises(ServiceError, match="at least 2"):
        launch(project, setup, samples_per_prompt=1)
    assert AlignmentRound.objects.count() == 0 and queued == []
    round_ = launch(project, setup, hyperparameters={"dpo": {"beta": 0.3}})
    assert round_.hyperparameters["dpo"]["beta"] == 0.3
    assert (
        round_.hyperparameters["dpo"]["learning_rate"]
        == default_hyperparameters("dpo")["dpo"]["learning_rate"]
    )
    assert (round_.state, round_.number, round_.judgments_wanted) == ("generating", 1, 3)
    assert TrainingJob.objects.get(pk=queued[0]).kind == "generate"


def test_a_projects_round_defaults_sit_between_the_engines_and_the_launch(project, setup, queued):
    RoundDefaults.objects.create(
        project=project,
        hyperparameters={
            "dpo": {"learning_rate": 5e-4, "lora": {"rank": 8}},
            "ppo": {"kl_coef": 0.2},
        },
    )
    engine = default_hyperparameters("dpo")["dpo"]
    round_ = launch(project, setup, hyperparameters={"dpo": {"beta": 0.3}})
    dpo = round_.hyperparameters["dpo"]
    assert (dpo["learning_rate"], dpo["lora"]["rank"], dpo["beta"]) == (5e-4, 8, 0.3)
    assert dpo["lora"]["alpha"] == engine["lora"]["alpha"] and dpo["epochs"] == engine["epochs"]
    assert "ppo" not in round_.hyperparameters  # the other method's section stays out
    assert launch(project, setup, method="ppo").hyperparameters["ppo"]["kl_coef"] == 0.2
    # What a round is launched with still wins over the project's defaults.
    assert (
        launch(project, setup, hyperparameters={"dpo": {"learning_rate": 1e-5}}).hyperparameters[
            "dpo"
        ]["learning_rate"]
        == 1e-5
    )


def test_round_defaults_that_no_round_could_start_from_are_refused():
    check_round_defaults({"dpo": {"beta": 0.2}, "reward": {"epochs": 2}})
    with pytest.raises(ServiceError, match="Unknown hyperparameter sections: warp"):
        check_round_defaults({"warp": {}})
    with pytest.raises(ServiceError, match="Unknown ppo hyperparameters: beta"):
        check_round_defaults({"ppo": {"beta": 0.2}})
    with pytest.raises(ServiceError, match="Bad dpo hyperparameters"):
        check_round_defaults({"dpo": {"lora": {"rank": 0}}})


def test_the_demo_project_starts_rounds_from_settings_that_move_a_tiny_model(project):
    RoundDefaults.objects.create(project=project, hyperparameters=DEMO_ROUND_DEFAULTS)
    check_round_defaults(DEMO_ROUND_DEFAULTS)
    dpo = project_defaults(project.pk, "dpo")["dpo"]
    assert dpo["learning_rate"] == 5e-4 and dpo["lora"]["rank"] == 8


def test_dpo_round_walks_every_state(project, setup, queued, make_member, monkeypatch):
    policy, _, prompts = setup
    round_ = launch(project, setup)
    generate = TrainingJob.objects.get(pk=queued[0])
    fake_samples(generate, prompts)
    succeed(generate.pk)
    round_.refresh_from_db()
    assert round_.state == "annotating"
    assert AnnotationTask.objects.filter(alignment_round=round_).count() == 3
    assert rounds.advance_annotating_rounds() == []  # quota not met

    annotator = make_member()
    simulate_annotator(
        annotator_id=annotator.pk, project_id=project.pk, prefers=prefers_word("apple")
    )
    assert rounds.judgments_collected(round_) == 3
    assert rounds.advance_annotating_rounds() == [round_.pk]
    round_.refresh_from_db()
    assert round_.state == "training_policy" and round_.snapshot.row_count == 3
    dpo = TrainingJob.objects.get(pk=queued[1])
    assert (dpo.kind, dpo.snapshot_id) == ("dpo", round_.snapshot_id)

    child = services.create_model_version(
        project_id=project.pk,
        name="child",
        base_model="/models/tiny",
        parent_id=policy.pk,
        method="dpo",
    )
    succeed(dpo.pk, result_version_id=child.pk)
    round_.refresh_from_db()
    assert round_.state == "evaluating" and round_.result_version == child
    evaluate = TrainingJob.objects.get(pk=queued[2])
    assert (evaluate.kind, evaluate.model_version_id) == ("evaluate", child.pk)
    succeed(evaluate.pk, artifacts={"evaluation": {"kl_to_parent": 0.4}})
    round_.refresh_from_db()
    assert round_.state == "done" and round_.evaluation == {"kl_to_parent": 0.4}

    following = rounds.next_round(round_.pk)
    assert (following.number, following.policy_id, following.state) == (2, child.pk, "generating")


def test_ppo_round_trains_a_reward_model_first(project, setup, queued, make_member):
    _, _, prompts = setup
    round_ = launch(project, setup, method="ppo")
    generate = TrainingJob.objects.get(pk=queued[0])
    fake_samples(generate, prompts)
    succeed(generate.pk)
    simulate_annotator(
        annotator_id=make_member().pk, project_id=project.pk, prefers=prefers_word("apple")
    )
    rounds.start_training(round_.pk)  # an admin moves it on
    round_.refresh_from_db()
    assert round_.state == "training_reward"
    reward_job = TrainingJob.objects.get(pk=queued[1])
    reward = services.create_model_version(
        project_id=project.pk, name="rm", base_model="x", method="reward_model"
    )
    succeed(reward_job.pk, result_version_id=reward.pk)
    ppo = TrainingJob.objects.get(pk=queued[2])
    assert ppo.kind == "ppo" and ppo.config["reward_model_version_id"] == reward.pk
    assert sorted(ppo.config["prompt_ids"]) == sorted(p.pk for p in prompts)


def test_moving_on_takes_back_leases_on_the_tasks_left_open(project, setup, queued, make_member):
    _, _, prompts = setup
    round_ = launch(project, setup)
    fake_samples(TrainingJob.objects.get(pk=queued[0]), prompts)
    succeed(queued[0])
    simulate_annotator(
        annotator_id=make_member().pk,
        project_id=project.pk,
        prefers=prefers_word("apple"),
        max_tasks=2,
    )
    late = make_member()
    held = services.next_task_for(annotator_id=late.pk, project_id=project.pk)
    rounds.start_training(round_.pk)
    assert AnnotationTask.objects.get(pk=held.task_id).status == "archived"
    assert services.next_task_for(annotator_id=late.pk, project_id=project.pk) is None
    with pytest.raises(ServiceError, match="not assigned to you"):
        services.submit_judgment(
            annotator_id=late.pk,
            task_id=held.task_id,
            data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key="late"),
        )


def test_moving_on_without_pairs_is_refused(project, setup, queued):
    round_ = launch(project, setup)
    succeed(queued[0])
    with pytest.raises(ServiceError, match="No preference pairs"):
        rounds.start_training(round_.pk)
    round_.refresh_from_db()
    assert round_.state == "annotating"


def test_failure_then_resume_reruns_the_step(project, setup, queued):
    round_ = launch(project, setup)
    job = jobs.finish_failed(queued[0], "CUDA out of memory")
    rounds.on_job_finished(job)
    round_.refresh_from_db()
    assert (round_.state, round_.failed_state, round_.error) == (
        "failed",
        "generating",
        "CUDA out of memory",
    )
    rounds.resume_round(round_.pk)
    round_.refresh_from_db()
    assert round_.state == "generating" and round_.error == ""
    assert TrainingJob.objects.get(pk=queued[0]).status == "queued"
    assert queued == [queued[0], queued[0]]  # the same job is sent again and resumes


def test_cancel_stops_jobs_and_can_resume(project, setup, queued):
    round_ = launch(project, setup)
    rounds.cancel_round(round_.pk)
    round_.refresh_from_db()
    assert (round_.state, round_.failed_state) == ("cancelled", "generating")
    assert TrainingJob.objects.get(pk=queued[0]).status == "cancelled"
    with pytest.raises(ServiceError, match="not running"):
        rounds.cancel_round(round_.pk)
    rounds.resume_round(round_.pk)
    round_.refresh_from_db()
    assert round_.state == "generating"
    with pytest.raises(ServiceError, match="nothing to resume"):
        rounds.resume_round(round_.pk)


def judge_rounds(project, annotator, choice_for) -> None:
    """Answer every task the annotator is given, with choice_for(round id)."""
    while lease := services.next_task_for(annotator_id=annotator.pk, project_id=project.pk):
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=lease.task_id,
            data=services.JudgmentInput(
                kind="pairwise",
                choice=choice_for(lease.task.alignment_round_id),
                idempotency_key=f"k{lease.task_id}",
            ),
        )


def test_a_round_whose_judgments_make_no_pairs_fails_and_the_others_move_on(
    project, setup, queued, make_member, settings
):
    _, _, prompts = setup
    tied, decided = launch(project, setup), launch(project, setup)
    for job_id in queued[:2]:
        fake_samples(TrainingJob.objects.get(pk=job_id), prompts)
        succeed(job_id)
    judge_rounds(project, make_member(), lambda round_id: "tie" if round_id == tied.pk else "a")
    assert rounds.advance_annotating_rounds() == [decided.pk]
    tied.refresh_from_db()
    decided.refresh_from_db()
    assert decided.state == "training_policy"
    assert tied.state == "failed" and "made none" in tied.error
    exported = sorted(p.name for p in (settings.ARTIFACT_ROOT / "exports").iterdir())
    assert exported == [decided.snapshot.path.rsplit("/", 1)[-1]]  # no file for the failed one


def test_a_step_that_ends_after_a_cancel_moves_the_round_on_once_resumed(project, setup, queued):
    _, _, prompts = setup
    round_ = launch(project, setup)
    job = jobs.start(queued[0])
    rounds.cancel_round(round_.pk)  # sampling does not stop for it
    fake_samples(job, prompts)
    rounds.on_job_finished(jobs.finish_succeeded(job.pk, artifacts={}, attempt=job.attempts))
    round_.refresh_from_db()
    assert round_.state == "cancelled"
    rounds.resume_round(round_.pk)
    round_.refresh_from_db()
    assert round_.state == "annotating" and queued == [job.pk]  # nothing run again

    # Cancelled and resumed while its step still runs: the step goes on and moves the round.
    second = launch(project, setup)
    job = jobs.start(queued[-1])
    rounds.cancel_round(second.pk)
    rounds.resume_round(second.pk)
    assert not jobs.is_cancel_requested(job.pk)
    fake_samples(job, prompts)
    rounds.on_job_finished(jobs.finish_succeeded(job.pk, artifacts={}, attempt=job.attempts))
    second.refresh_from_db()
    assert second.state == "annotating"


def test_a_job_runs_once_and_only_its_current_run_moves_the_round(
    project, setup, queued, make_member
):
    from datetime import timedelta

    from django.utils import timezone

    _, _, prompts = setup
    round_ = launch(project, setup, method="ppo")
    generate = jobs.start(queued[0])
    assert jobs.start(queued[0]) is None  # delivered twice: not run twice
    # ... unless its heart stopped: the broker hands a dead worker's job on.
    TrainingJob.objects.filter(pk=generate.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=11)
    )
    generate = jobs.start(queued[0])
    assert generate.attempts == 2
    # Given up on as dead, then resumed: the first run's late report is not the job's.
    jobs.fail_stale_jobs(timezone.now() + timedelta(minutes=11))
    rounds.resume_round(round_.pk)
    rerun = jobs.start(queued[0])
    assert rerun.attempts == generate.attempts + 1
    assert jobs.finish_succeeded(generate.pk, artifacts={}, attempt=generate.attempts) is None
    fake_samples(rerun, prompts)
    rounds.on_job_finished(jobs.finish_succeeded(rerun.pk, artifacts={}, attempt=rerun.attempts))
    simulate_annotator(
        annotator_id=make_member().pk, project_id=project.pk, prefers=prefers_word("apple")
    )
    rounds.start_training(round_.pk)
    reward = TrainingJob.objects.get(pk=queued[-1])
    version = services.create_model_version(
        project_id=project.pk, name="rm", base_model="x", method="reward_model"
    )
    succeed(reward.pk, result_version_id=version.pk)
    sent = len(queued)
    rounds.on_job_finished(reward)  # its report, again: no second policy job
    assert len(queued) == sent and TrainingJob.objects.filter(kind="ppo").count() == 1


def test_a_finished_round_is_followed_once(project, setup, queued):
    round_ = launch(project, setup)
    child = services.create_model_version(
        project_id=project.pk, name="child", base_model="/models/tiny"
    )
    AlignmentRound.objects.filter(pk=round_.pk).update(state="done", result_version=child)
    following = rounds.next_round(round_.pk)
    with pytest.raises(ServiceError, match=f"followed already, by round {following.number}"):
        rounds.next_round(round_.pk)


def test_answers_a_round_trained_on_are_not_taken_back(project, setup, queued, make_member):
    _, _, prompts = setup
    round_ = launch(project, setup)
    fake_samples(TrainingJob.objects.get(pk=queued[0]), prompts)
    succeed(queued[0])
    annotator = make_member()
    choices = iter(["a", "a", "tie"])  # the newest makes no pair: nothing else stops its undo
    judge_rounds(project, annotator, lambda round_id: next(choices))
    rounds.start_training(round_.pk)
    with pytest.raises(ServiceError, match="moved on to training"):
        services.undo_last_judgment(annotator_id=annotator.pk, project_id=project.pk)
