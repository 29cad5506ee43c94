"""A whole round in a real browser with nothing faked: an admin launches it from the form, a real
Celery worker samples, trains and evaluates the tiny model, a simulated annotator judges through
the services, and the page follows every step by htmx polling until the new version is in the
registry and in the side-by-side view."""

import hashlib
import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Completion, Judgment, PromptSet, Role
from feedback.models.prompts import PromptSplit
from feedback.simulation import prefers_word, simulate_annotator
from tests.browser.conftest import sign_in, snap
from tests.conftest import wait_for
from training.engine.tiny import demo_prompts
from training.models import AlignmentRound, JobKind, JobStatus, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN_PROMPTS = 6
# Four samples make one ranking task per prompt (the project ranks), which gives the simulated
# annotator more chances to find its word than pairs would; 20 tokens let the tiny model finish
# its sentence ("a red apple ."), where 12 cut it to "appl".
SAMPLES_PER_PROMPT = 4
# Small enough that sampling, two DPO epochs and the evaluation take seconds on a CPU.
GENERATION = {"max_new_tokens": 20}
DPO = {
    "learning_rate": 1e-3,
    "epochs": 2,
    "batch_size": 8,
    "max_length": 64,
    "lora": {"rank": 8, "alpha": 16, "dropout": 0.0},
    "checkpoint_every": 1000,
}
# Generous bounds for a loaded 2-core machine; each wait ends as soon as the page changes.
SAMPLING_TIMEOUT_MS = 90_000
TRAINING_TIMEOUT_MS = 180_000


def build_project(django_user_model, base_model: str):
    project = services.create_project(name="Tiny loop", modes=("pairwise", "ranking"), overlap=1)
    admin = django_user_model.objects.create_user("lead", password="pw")
    services.add_member(project_id=project.pk, user_id=admin.pk, role=Role.ADMIN)
    annotator = django_user_model.objects.create_user("simulated", password="pw")
    services.add_member(project_id=project.pk, user_id=annotator.pk, role=Role.ANNOTATOR)
    base = services.create_model_version(
        project_id=project.pk, name="tiny-base", base_model=base_model
    )
    texts = demo_prompts()
    train = [
        services.create_prompt(project_id=project.pk, text=text) for text in texts[:TRAIN_PROMPTS]
    ]
    held_out = [
        services.create_prompt(project_id=project.pk, text=text, split=PromptSplit.HELD_OUT)
        for text in texts[-2:]
    ]
    prompt_set = PromptSet.objects.create(project=project, name="Demo prompts")
    prompt_set.prompts.set(train)
    return project, annotator, base, prompt_set, held_out


def test_a_round_runs_live_from_launch_to_a_new_version(
    page, celery_worker_process, tiny_base, settings, tmp_path, django_user_model
):
    # Where the server writes the round's export snapshot; the worker reads it by its path.
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    project, annotator, base, prompt_set, held_out = build_project(django_user_model, tiny_base)

    page.set_default_timeout(30_000)  # a worker loading torch shares the CPU with the server
    sign_in(page, "lead")
    page.goto(f"/training/projects/{project.pk}/rounds/")
    page.get_by_role("link", name="Launch a round").click()
    expect(page.get_by_role("heading", name="Launch a round")).to_be_visible()
    page.get_by_label("DPO", exact=True).check()
    page.locator("textarea[name=hp_generation]").fill(json.dumps(GENERATION))
    page.locator("textarea[name=hp_dpo]").fill(json.dumps(DPO, indent=2))
    page.get_by_label("Samples per prompt").fill(str(SAMPLES_PER_PROMPT))
    snap(page, "round-live-launch")
    page.get_by_role("button", name="Launch round").click()

    expect(page.get_by_role("heading", name="Round 1 from tiny-base")).to_be_visible()
    live = page.locator("#round-live")
    state = live.get_by_role("status")
    expect(state).to_contain_text("Generating samples")
    expect(live).to_contain_text("Generate samples job")
    round_ = AlignmentRound.objects.get(project=project)
    assert round_.method == "dpo"
    assert round_.hyperparameters["dpo"]["epochs"] == 2
    assert round_.hyperparameters["dpo"]["lora"]["rank"] == 8
    assert round_.hyperparameters["dpo"]["beta"] == 0.1  # a key left out keeps its default
    assert round_.samples_per_prompt == SAMPLES_PER_PROMPT
    assert round_.judgments_wanted == TRAIN_PROMPTS  # one ranking task per prompt, overlap 1
    snap(page, "round-live-generating")
    # A mark on the window survives only if the page is never reloaded: htmx swaps the panel.
    page.evaluate("window.roundPageMark = 'first load'")

    expect(state).to_contain_text("Collecting judgments", timeout=SAMPLING_TIMEOUT_MS)
    expect(live).to_contain_text(f"{TRAIN_PROMPTS} annotation tasks in this round")
    expect(live).to_contain_text(f"0 of {TRAIN_PROMPTS} wanted")
    assert Completion.objects.filter(model_version=base).count() == (
        SAMPLES_PER_PROMPT * TRAIN_PROMPTS
    )

    result = simulate_annotator(
        annotator_id=annotator.pk, project_id=project.pk, prefers=prefers_word("apple")
    )
    assert result.judged == TRAIN_PROMPTS
    rankings = list(Judgment.objects.values_list("kind", "ranking"))
    # Seeded sampling makes this stable; a ranking with one group (every sample mentions
    # "apple" equally often) gives no pairs, and with no pairs there is nothing to train on.
    assert any(len(ranking) > 1 for _, ranking in rankings), rankings
    assert {kind for kind, _ in rankings} == {"ranking"}

    move_on = page.get_by_role("button", name=f"Train now with {TRAIN_PROMPTS} judgments")
    expect(move_on).to_be_visible(timeout=10_000)
    expect(live).to_contain_text(f"{TRAIN_PROMPTS} of {TRAIN_PROMPTS} wanted")
    snap(page, "round-live-judged")
    move_on.click()
    expect(state).to_contain_text("Training the policy", timeout=10_000)
    expect(live).to_contain_text("DPO job")

    expect(state).to_contain_text("Done", timeout=TRAINING_TIMEOUT_MS)
    assert page.evaluate("window.roundPageMark") == "first load"
    expect(page.locator("#round-live[hx-trigger]")).to_have_count(0)  # the polling stopped
    round_.refresh_from_db()
    new = round_.result_version
    assert new is not None and new.name == "tiny-base-r1-dpo"
    assert round_.snapshot.row_count > 0
    assert (new.parent_id, new.method, new.data_snapshot_id) == (base.pk, "dpo", round_.snapshot_id)
    outcome = page.get_by_role("region", name="Outcome")
    expect(outcome).to_contain_text(f"{round_.snapshot.row_count} pairs")
    expect(outcome.get_by_role("link", name="tiny-base-r1-dpo")).to_be_visible()
    expect(outcome).to_contain_text("Kl to parent")
    expect(
        page.get_by_role("button", name="Launch the next round from tiny-base-r1-dpo")
    ).to_be_visible()
    snap(page, "round-live-done", tablet=True)

    page.get_by_role("link", name="Models", exact=True).click()
    children = page.get_by_role("list", name="Trained from tiny-base", exact=True)
    node = children.locator(f"#version-{new.pk}")
    expect(node.get_by_role("heading", name="tiny-base-r1-dpo", exact=True)).to_be_visible()
    expect(node).to_contain_text(f"Snapshot #{round_.snapshot_id}")
    expect(node.get_by_role("link", name="Round 1")).to_be_visible()
    with page.expect_download() as download:  # exactly the pairs it trained on
        node.get_by_role("link", name=f"Snapshot #{round_.snapshot_id}").click()
    trained_on = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(trained_on).hexdigest() == round_.snapshot.content_hash
    snap(page, "round-live-registry")

    # Evaluation answered the held-out prompts with both the new version and its parent, so those
    # rows are filled at once; compare on all prompts.
    node.get_by_role("link", name="Compare with tiny-base", exact=True).click()
    expect(page.get_by_label("Version A")).to_have_value(str(new.pk))
    expect(page.get_by_label("Version B")).to_have_value(str(base.pk))
    page.get_by_label("Prompts", exact=True).select_option("")
    page.get_by_role("button", name="Compare").click()
    rows = page.locator(".tr-row")
    expect(rows).to_have_count(TRAIN_PROMPTS + len(held_out))
    for prompt in held_out:
        row = page.get_by_role("article", name=f"Prompt #{prompt.pk}", exact=True)
        for version, name in ((new, "A: tiny-base-r1-dpo"), (base, "B: tiny-base")):
            newest = Completion.objects.filter(model_version=version, prompt=prompt).latest("pk")
            side = row.get_by_role("region", name=name, exact=True)
            expect(side.locator(".tr-output-text")).to_have_text(newest.text)
    snap(page, "round-live-compare", tablet=True)

    # The admin has the worker answer the training prompts too; then both sides are filled.
    page.get_by_role("button", name=f"Generate {TRAIN_PROMPTS} missing outputs of A").click()
    message = page.get_by_text(f"for {TRAIN_PROMPTS} prompts.")
    expect(message).to_contain_text("Queued generate job #")
    job = TrainingJob.objects.filter(model_version=new, kind=JobKind.GENERATE).get()
    wait_for(lambda: finished(job.pk), timeout=SAMPLING_TIMEOUT_MS / 1000)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error + job.log_tail
    page.reload()  # as the page asks: "Reload when it has finished"
    both = page.locator(".tr-summary-stats div", has_text="Prompts with both outputs")
    total = TRAIN_PROMPTS + len(held_out)
    expect(both).to_contain_text(f"{total} of {total}")
    for prompt in prompt_set.prompts.all():
        newest = Completion.objects.filter(model_version=new, prompt=prompt).latest("pk")
        row = page.get_by_role("article", name=f"Prompt #{prompt.pk}", exact=True)
        side_a = row.get_by_role("region", name="A: tiny-base-r1-dpo")
        expect(side_a.locator(".tr-output-text")).to_have_text(newest.text)
        side_b = row.get_by_role("region", name="B: tiny-base", exact=True)
        expect(side_b.locator(".tr-output-text")).to_be_visible()
    expect(
        page.get_by_role("button", name=f"Send {total} pairs to annotators blind")
    ).to_be_visible()
    snap(page, "round-live-compare-both", tablet=True)


def finished(job_id: int) -> bool:
    return TrainingJob.objects.filter(
        pk=job_id, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    ).exists()
