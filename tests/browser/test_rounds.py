"""An admin in a real browser: launches a round from the form, watches the round page follow the
state machine through htmx polling, and reads the registry and a side-by-side comparison."""

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import ExportSnapshot, Role
from tests.browser.conftest import sign_in, snap
from tests.training.builders import answer, judge, make_prompt_set, make_round, make_version
from training.models import AlignmentRound, JobKind, JobStatus, RoundState, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTIONS = [
    (
        "How do I reverse a list in Python?",
        "Use items.reverse().",
        "Two ways: `items.reverse()` changes the list in place; `items[::-1]` returns a reversed copy.",
    ),
    (
        "What is the boiling point of water at sea level?",
        "100 °C.",
        "Water boils at 100 °C (212 °F) at sea level, under one standard atmosphere.",
    ),
    (
        "Explain a hash table to a beginner.",
        "It is a table of hashes.",
        "A hash table stores key/value pairs; a hash function turns each key into a slot, so a lookup is usually one step.",
    ),
]


# What the engine reports (see training/engine/__init__.py), over made-up but plausible curves.
HISTORIES = {
    JobKind.GENERATE: [{"step": 1, "new_tokens": 384}],
    JobKind.REWARD_MODEL: [
        {
            "step": s,
            "loss": 0.69 * 0.95**s,
            "accuracy": min(0.9, 0.5 + 0.025 * s),
            "margin": 0.08 * s,
            "reward_mean": 0.02 * s,
        }
        for s in range(1, 21)
    ],
    JobKind.PPO: [
        {
            "step": s,
            "loss": 0.4 * 0.96**s,
            "reward_mean": 0.3 * s**0.6,
            "penalized_reward_mean": 0.3 * s**0.6 - 0.006 * s,
            "kl": 0.006 * s,
            "approx_kl": 0.002 * s,
        }
        for s in range(1, 46)
    ],
}


def build_project(django_user_model):
    project = services.create_project(name="Helpful answers", modes=("pairwise", "ranking"))
    admin = django_user_model.objects.create_user("lead", password="pw")
    services.add_member(project_id=project.pk, user_id=admin.pk, role=Role.ADMIN)
    base = make_version(project, "tiny-base", base_model="/models/tiny-base")
    prompt_set, prompts = make_prompt_set(project, n=0, name="Everyday questions")
    for text, _, _ in QUESTIONS:
        prompt_set.prompts.add(services.create_prompt(project_id=project.pk, text=text))
    return project, admin, base, prompt_set


def add_history(project, base, prompt_set, django_user_model):
    """A finished DPO round with its new version, and a second round part-way through training."""
    snapshot = ExportSnapshot.objects.create(
        project=project,
        kind="pairs",
        format="jsonl",
        row_count=48,
        content_hash="3f9a" * 16,
        status="complete",
    )
    first = make_round(project, base, prompt_set, state=RoundState.DONE, judgments_wanted=48)
    tuned = make_version(
        project,
        "tiny-base-r1-dpo",
        parent_id=base.pk,
        method="dpo",
        alignment_round_id=first.pk,
        data_snapshot_id=snapshot.pk,
        metrics={"loss": 0.412, "accuracy": 0.81, "margin": 1.37},
        hyperparameters={"beta": 0.1, "learning_rate": 5e-5},
    )
    AlignmentRound.objects.filter(pk=first.pk).update(result_version=tuned, snapshot=snapshot)
    second = make_round(
        project,
        tuned,
        prompt_set,
        method="ppo",
        state=RoundState.TRAINING_POLICY,
        judgments_wanted=6,
    )
    make_version(
        project,
        "tiny-base-r1-dpo-r2-rm",
        parent_id=tuned.pk,
        method="reward_model",
        alignment_round_id=second.pk,
        metrics={"eval_accuracy": 0.74},
    )
    for kind, status, progress in (
        (JobKind.GENERATE, JobStatus.SUCCEEDED, 100.0),
        (JobKind.REWARD_MODEL, JobStatus.SUCCEEDED, 100.0),
        (JobKind.PPO, JobStatus.RUNNING, 45.0),
    ):
        TrainingJob.objects.create(
            project=project,
            kind=kind,
            status=status,
            progress=progress,
            alignment_round=second,
            model_version=tuned,
            attempts=1,
            metrics_history=HISTORIES[kind],
            log_tail="".join(f"step {s}: loss {0.7 * 0.93**s:.4f}\n" for s in range(30, 46)),
            artifacts={"adapter_dir": "var/artifacts/jobs/reward_model-2/adapter"}
            if kind == JobKind.REWARD_MODEL
            else {},
        )
    judges = [django_user_model.objects.create_user(f"judge{i}", password="pw") for i in range(3)]
    for index, prompt in enumerate(prompt_set.prompts.order_by("pk")):
        short, long = QUESTIONS[index][1], QUESTIONS[index][2]
        task = services.create_task(
            prompt_id=prompt.pk,
            completion_ids=[answer(prompt, tuned, long).pk, answer(prompt, base, short).pk],
        )
        for judge_index, user in enumerate(judges):
            judge(task, user, "b" if (index == 1 and judge_index == 0) else "a")
    return second


def test_an_admin_launches_a_round_and_follows_it(
    page, transactional_db, django_user_model, monkeypatch
):
    monkeypatch.setattr("training.jobs.dispatch", lambda job: None)  # no worker in this test
    project, admin, base, prompt_set = build_project(django_user_model)

    sign_in(page, "lead")
    page.get_by_role("link", name="Training").click()
    expect(page.get_by_role("heading", name="Helpful answers")).to_be_visible()
    snap(page, "training-index")
    page.get_by_role("link", name="Launch a round").click()
    expect(page.get_by_role("heading", name="Launch a round")).to_be_visible()
    expect(page.get_by_label("DPO", exact=True)).to_be_checked()
    expect(page.locator("textarea[name=hp_dpo]")).to_contain_text('"beta": 0.1')

    # Switching the method swaps in PPO's sections through htmx.
    page.get_by_label("PPO with KL penalty (via a reward model)").check()
    expect(page.locator("textarea[name=hp_ppo]")).to_contain_text('"kl_coef": 0.05')
    expect(page.locator("textarea[name=hp_reward]")).to_be_visible()
    expect(page.locator("textarea[name=hp_dpo]")).to_have_count(0)
    page.get_by_label("Judgments wanted").fill("6")
    page.get_by_role("heading", name="Launch a round").scroll_into_view_if_needed()
    snap(page, "training-launch", tablet=True)
    page.get_by_role("button", name="Launch round").click()

    expect(page.get_by_role("heading", name="Round 1 from tiny-base")).to_be_visible()
    expect(
        page.get_by_text("PPO with KL penalty (via a reward model) · prompt set")
    ).to_be_visible()
    expect(page.get_by_text("Round 1 launched")).to_be_visible()
    live = page.locator("#round-live")
    expect(live.get_by_role("status")).to_contain_text("Generating samples")
    expect(live.locator('[aria-current="step"]')).to_contain_text("Generating samples")
    expect(live).to_contain_text("Generate samples job")
    round_ = AlignmentRound.objects.get(project=project)
    assert (round_.method, round_.judgments_wanted, round_.state) == (
        "ppo",
        6,
        RoundState.GENERATING,
    )

    # The worker's progress shows up without a reload; a finished round stops the polling.
    AlignmentRound.objects.filter(pk=round_.pk).update(state=RoundState.ANNOTATING)
    TrainingJob.objects.filter(alignment_round=round_).update(
        status=JobStatus.SUCCEEDED, progress=100
    )
    expect(live.get_by_role("status")).to_contain_text("Collecting judgments", timeout=6000)
    expect(page.get_by_role("button", name="Train now with 0 judgments")).to_be_visible()
    AlignmentRound.objects.filter(pk=round_.pk).update(
        state=RoundState.CANCELLED, failed_state=RoundState.ANNOTATING
    )
    expect(live.get_by_role("status")).to_contain_text("Cancelled", timeout=6000)
    expect(page.locator("#round-live[hx-trigger]")).to_have_count(0)
    page.get_by_role("button", name="Resume from collecting judgments").click()
    expect(live.get_by_role("status")).to_contain_text("Collecting judgments")
    round_.refresh_from_db()
    assert round_.state == RoundState.ANNOTATING


def test_round_registry_and_side_by_side_pages(
    page, transactional_db, django_user_model, monkeypatch
):
    monkeypatch.setattr("training.jobs.dispatch", lambda job: None)
    project, admin, base, prompt_set = build_project(django_user_model)
    training = add_history(project, base, prompt_set, django_user_model)

    sign_in(page, "lead")
    page.goto(f"/training/rounds/{training.pk}/")
    expect(page.locator("#round-live svg")).to_have_count(6)  # loss, reward, KL / accuracy
    expect(page.locator('[aria-current="step"]')).to_contain_text("Training the policy")
    snap(page, "training-round", tablet=True)

    page.get_by_role("link", name="Models", exact=True).click()
    tree = page.get_by_role("list", name="Trained from tiny-base", exact=True)
    expect(tree.get_by_role("heading", name="tiny-base-r1-dpo", exact=True)).to_be_visible()
    expect(page.get_by_role("list", name="Trained from tiny-base-r1-dpo")).to_contain_text(
        "tiny-base-r1-dpo-r2-rm"
    )
    expect(page.get_by_text("Snapshot #")).to_be_visible()
    snap(page, "training-registry", tablet=True)

    page.get_by_role("link", name="Compare with tiny-base", exact=True).click()
    # The link names only the two versions; the page fills in the prompt set and compares at once.
    expect(page.get_by_label("Prompts", exact=True)).to_have_value(str(prompt_set.pk))
    summary = page.locator(".tr-summary")
    expect(summary).to_contain_text("89%")  # 8 of 9 judgments went to A
    expect(summary).to_contain_text("Elo")
    expect(page.locator(".tr-row .badge", has_text="Judges disagree")).to_have_count(1)
    snap(page, "training-compare", tablet=True)
    page.get_by_label("Show").select_option("split")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**show=split**")  # htmx pushed the filtered view into the history
    expect(page.locator(".tr-row")).to_have_count(1)
    expect(page.locator(".tr-row")).to_contain_text("boiling point")
