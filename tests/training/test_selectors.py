"""training.selectors: who sees what, round steps and live progress, the lineage tree, adapters."""

import io
import zipfile
from pathlib import Path

import pytest

from feedback import services
from feedback.models import Role
from training import jobs, selectors
from training.models import JobKind, RoundState, TrainingJob

from .builders import answer, judge, make_prompt_set, make_round, make_version, trained_version

pytestmark = pytest.mark.django_db


def test_reviewers_and_admins_see_training_pages_and_only_admins_manage(
    project, make_member, make_user
):
    admin, reviewer, annotator = (
        make_member(Role.ADMIN),
        make_member(Role.REVIEWER),
        make_member(Role.ANNOTATOR),
    )
    staff, stranger = make_user(is_staff=True), make_user()
    assert [
        selectors.can_view(u, project.pk) for u in (admin, reviewer, annotator, staff, stranger)
    ] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert [selectors.can_manage(u, project.pk) for u in (admin, reviewer, staff)] == [
        True,
        False,
        True,
    ]
    other = services.create_project(name="Other")
    services.add_member(project_id=other.pk, user_id=annotator.pk, role=Role.REVIEWER)
    assert list(selectors.reviewable_projects(annotator)) == [other]
    assert list(selectors.reviewable_projects(reviewer)) == [project]
    assert set(selectors.reviewable_projects(staff)) == {project, other}


def test_launch_offers_ready_trainable_versions_and_counts_training_prompts(project):
    ready = make_version(project, "ready")
    make_version(project, "imported", base_model="", method="imported")
    make_version(project, "pending", status="pending")
    make_version(project, "rm", method="reward_model")
    assert list(selectors.trainable_versions(project.pk)) == [ready]
    prompt_set, _ = make_prompt_set(project, n=3)
    _, held_out = make_prompt_set(project, n=2, split="held_out")
    prompt_set.prompts.add(*held_out)
    counted = selectors.prompt_sets_with_counts(project.pk).get(pk=prompt_set.pk)
    assert (counted.prompt_count, counted.train_count) == (5, 3)


def statuses(round_):
    return [(step.state, step.status) for step in selectors.round_steps(round_)]


def test_steps_follow_the_method_and_mark_where_a_round_stopped(project):
    policy = make_version(project)
    prompt_set, _ = make_prompt_set(project)
    ppo = make_round(project, policy, prompt_set, method="ppo", state=RoundState.TRAINING_REWARD)
    assert statuses(ppo) == [
        ("generating", "done"),
        ("annotating", "done"),
        ("training_reward", "current"),
        ("training_policy", "todo"),
        ("evaluating", "todo"),
        ("done", "todo"),
    ]
    dpo = make_round(
        project,
        policy,
        prompt_set,
        state=RoundState.FAILED,
        failed_state=RoundState.TRAINING_POLICY,
    )
    assert statuses(dpo) == [
        ("generating", "done"),
        ("annotating", "done"),
        ("training_policy", "failed"),
        ("evaluating", "todo"),
        ("done", "todo"),
    ]
    cancelled = make_round(
        project, policy, prompt_set, state=RoundState.CANCELLED, failed_state=RoundState.ANNOTATING
    )
    assert [s.status for s in selectors.round_steps(cancelled)][:3] == ["done", "stopped", "todo"]
    done = make_round(project, policy, prompt_set, state=RoundState.DONE)
    assert {s.status for s in selectors.round_steps(done)} == {"done"}


def test_progress_counts_judgments_and_its_fingerprint_moves_with_the_job(
    project, make_user, make_task
):
    policy = make_version(project)
    prompt_set, _ = make_prompt_set(project)
    round_ = make_round(
        project, policy, prompt_set, judgments_wanted=4, state=RoundState.ANNOTATING
    )
    task = make_task(alignment_round_id=round_.pk)
    judge(task, make_user(), "a")
    job = jobs.queue_job(
        kind=JobKind.DPO, model_version_id=policy.pk, alignment_round_id=round_.pk, config={}
    )
    progress = selectors.round_progress(round_)
    assert (progress.judgments_collected, progress.quota_percent, progress.task_count) == (
        1,
        25.0,
        1,
    )
    assert progress.current_job.job == job and progress.current_job.is_active
    assert not progress.is_finished
    before = progress.fingerprint
    assert selectors.round_progress(round_).fingerprint == before  # nothing changed

    jobs.record_metrics(job.pk, {"step": 1, "loss": 0.69, "accuracy": 0.5}, progress=10)
    after = selectors.round_progress(round_)
    assert after.fingerprint != before
    assert [c.title for c in after.current_job.charts] == ["Loss", "Accuracy"]
    assert selectors.live_fingerprint(round_) == after.fingerprint

    # Once the log tail is full its length stays put; new lines must still count as a change.
    TrainingJob.objects.filter(pk=job.pk).update(log_tail="x" * jobs.LOG_TAIL_CHARS)
    full = selectors.live_fingerprint(round_)
    jobs.append_log(job.pk, "step 2: loss 0.61")
    assert len(TrainingJob.objects.get(pk=job.pk).log_tail) == jobs.LOG_TAIL_CHARS
    assert selectors.live_fingerprint(round_) != full


def test_the_registry_nests_versions_under_their_parents(project):
    base = make_version(project, "base", metrics={"loss": 0.123456, "note": "x"})
    other_root = make_version(project, "imported", base_model="", method="imported")
    child = make_version(project, "base-r1-dpo", parent_id=base.pk, method="dpo")
    grandchild = make_version(project, "base-r2-dpo", parent_id=child.pk, method="dpo")
    sibling = make_version(project, "base-r1-ppo", parent_id=base.pk, method="ppo")
    _, prompts = make_prompt_set(project)
    for prompt in prompts:
        answer(prompt, base)
    answer(prompts[0], other_root)
    tree = selectors.version_tree(project.pk)

    def shape(nodes):
        return [(n.version.name, shape(n.children)) for n in nodes]

    assert shape(tree) == [
        ("base", [("base-r1-dpo", [("base-r2-dpo", [])]), ("base-r1-ppo", [])]),
        ("imported", []),
    ]
    assert tree[0].metric_rows == [("loss", "0.1235"), ("note", "x")]
    assert (tree[0].completion_count, tree[1].completion_count) == (3, 1)
    assert tree[0].children[0].completion_count == 0
    assert {base.pk, other_root.pk, child.pk, grandchild.pk, sibling.pk} == {
        n.version.pk for n in [*tree, *tree[0].children, tree[0].children[0].children[0]]
    }


def test_an_adapter_is_offered_only_from_the_folder_its_training_job_wrote(
    project, artifact_root, tmp_path
):
    good = trained_version(project, make_version(project), "good")
    inside = Path(good.adapter_path)
    (inside / "sub").mkdir(parents=True)
    (inside / "adapter_config.json").write_text('{"r": 16}')
    (inside / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (inside / "escape").symlink_to(outside / "secret.txt")
    (outside / "secret.txt").write_text("not for download")

    assert selectors.adapter_directory(good) == inside.resolve()
    # Typed into an import: not even the job's own folder, nor the root, nor another's.
    for path in (
        str(inside),
        str(artifact_root),
        str(artifact_root / "jobs"),
        str(outside),
        str(artifact_root / ".." / "elsewhere"),
        "",
    ):
        version = make_version(project, adapter_path=path)
        assert selectors.adapter_directory(version) is None, path

    files = selectors.adapter_files(inside.resolve())
    assert [name for name, _ in files] == ["adapter_config.json", "sub/weights.bin"]
    archive = zipfile.ZipFile(
        io.BytesIO(b"".join(selectors.adapter_zip_chunks(files, block_size=64)))
    )
    assert archive.testzip() is None
    assert archive.read("sub/weights.bin") == b"\x00\x01" * 1000
    assert archive.read("adapter_config.json") == b'{"r": 16}'


def test_value_rows_spell_out_nested_figures_in_key_order():
    rows = selectors.value_rows(
        {
            "loss": 0.693147,
            "evaluation": {"kl_to_parent": 0.0123456, "eos_fraction": 1.0},
            "gradient_checkpointing": False,
            "history": {},
        }
    )
    assert rows == [
        ("evaluation: eos fraction", "1"),
        ("evaluation: kl to parent", "0.01235"),
        ("gradient checkpointing", "no"),
        ("history", "{}"),
        ("loss", "0.6931"),
    ]
