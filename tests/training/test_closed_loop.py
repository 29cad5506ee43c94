"""The whole loop, closed: samples -> judgments -> pairs -> (reward model) -> policy -> new samples.

A simulated annotator with a hidden preference (responses that mention "apple") judges through the
same services people use. From one tiny base, two DPO rounds and two PPO rounds each; the newest
version must win clearly against the base as that annotator judges it, with KL to the base bounded.
"""

import os

import pytest
import torch

from feedback import services
from feedback.models import Judgment, ModelVersion, PromptSet
from feedback.models.prompts import PromptSplit
from feedback.simulation import prefers_word, simulate_annotator
from training import jobs, rounds, runners
from training.demo import DEMO_ROUND_DEFAULTS
from training.engine.config import GenerationSettings
from training.engine.policy import load_policy, sample, sequence_logprobs
from training.engine.tiny import demo_prompts
from training.models import AlignmentRound

pytestmark = pytest.mark.slow

WORD = "apple"
# Seeds every training run and the comparison's sampling; set CLOSED_LOOP_SEED to try others.
SEED = int(os.environ.get("CLOSED_LOOP_SEED", "0"))
# The demo project's round defaults, sized for the tiny model, are this test's settings: what
# moves a tiny policy in the demo is what this loop found (see training/demo.py for the why).
RUN = {"checkpoint_every": 1000, "seed": SEED}
HYPERPARAMETERS = {
    "dpo": {
        "generation": DEMO_ROUND_DEFAULTS["generation"],
        "dpo": {**DEMO_ROUND_DEFAULTS["dpo"], **RUN},
    },
    "ppo": {
        "generation": DEMO_ROUND_DEFAULTS["generation"],
        "reward": {**DEMO_ROUND_DEFAULTS["reward"], **RUN},
        "ppo": {**DEMO_ROUND_DEFAULTS["ppo"], **RUN},
    },
}
GENERATION = DEMO_ROUND_DEFAULTS["generation"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads, and OpenMP threads spin when other processes share
    the cores (measured on a busy 2-core machine: 5x the CPU time with two threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pending(monkeypatch):
    """Jobs run here, one after another, in place of a worker (the worker path has its own test)."""
    queue: list[int] = []
    monkeypatch.setattr(jobs, "dispatch", lambda job: queue.append(job.pk))
    return queue


def drain(queue: list[int]) -> None:
    while queue:
        runners.run_job(queue.pop(0))


def run_round(round_: AlignmentRound, queue: list[int], annotator_id: int) -> AlignmentRound:
    drain(queue)  # generate
    round_.refresh_from_db()
    assert round_.state == "annotating", round_.error
    simulate_annotator(
        annotator_id=annotator_id, project_id=round_.project_id, prefers=prefers_word(WORD)
    )
    assert rounds.advance_annotating_rounds() == [round_.pk]
    drain(queue)  # [reward model,] policy, evaluation
    round_.refresh_from_db()
    assert round_.state == "done", round_.error
    return round_


def compare_with_base(project, new: ModelVersion, base: ModelVersion, prompts, annotator_id: int):
    """(win rate, KL to base, shares mentioning WORD): pairwise tasks new-vs-base on held-out
    prompts, judged by the simulated annotator; the mean per-sequence KL(new || base) on the new
    version's samples; and the share of each version's samples that mention WORD."""
    torch.manual_seed(SEED)
    settings = GenerationSettings(num_samples=8, **GENERATION)
    policies = {v.pk: load_policy(v.base_model, v.adapter_path or None) for v in (new, base)}
    samples = {
        pk: sample(policy, [runners.engine_prompt(p) for p in prompts], settings)
        for pk, policy in policies.items()
    }
    texts = {pk: generations.texts for pk, generations in samples.items()}
    # Both versions share the tiny tokenizer, so the base scores the new version's exact tokens.
    on_new = sequence_logprobs(policies[new.pk].model, samples[new.pk])
    on_base = sequence_logprobs(policies[base.pk].model, samples[new.pk])
    kl = float((on_new - on_base).mean())
    shares = {}
    for pk, generations in samples.items():
        share = shares[pk] = sum(WORD in text for text in generations.texts) / len(
            generations.texts
        )
        print(
            f"version {pk}: {share:.0%} mention {WORD!r}, {sum(generations.has_eos)} of "
            f"{len(generations.texts)} end with EOS; e.g. {generations.texts[:2]}"
        )
    before = set(Judgment.objects.values_list("pk", flat=True))
    for index, (new_text, base_text) in enumerate(zip(texts[new.pk], texts[base.pk], strict=True)):
        prompt = prompts[index // settings.num_samples]
        a = services.create_completion(prompt_id=prompt.pk, text=new_text, model_version_id=new.pk)
        b = services.create_completion(
            prompt_id=prompt.pk, text=base_text, model_version_id=base.pk
        )
        services.create_task(prompt_id=prompt.pk, completion_ids=[a.pk, b.pk])
    simulate_annotator(annotator_id=annotator_id, project_id=project.pk, prefers=prefers_word(WORD))
    judged = Judgment.objects.exclude(pk__in=before)
    score = {"a": 1.0, "tie": 0.5, "b": 0.0}
    return sum(score[j.choice] for j in judged) / judged.count(), kl, shares


def test_two_dpo_then_two_ppo_rounds_learn_the_hidden_preference(
    tiny_base, artifact_root, pending, make_user
):
    project = services.create_project(name="loop", modes=("pairwise", "ranking"), overlap=1)
    annotator = make_user()
    services.add_member(project_id=project.pk, user_id=annotator.pk)
    base = services.create_model_version(
        project_id=project.pk, name="tiny-base", base_model=tiny_base
    )
    texts = demo_prompts()
    train = [services.create_prompt(project_id=project.pk, text=t) for t in texts[:24]]
    held_out = [
        services.create_prompt(project_id=project.pk, text=t, split=PromptSplit.HELD_OUT)
        for t in texts[24:]
    ]
    prompt_set = PromptSet.objects.create(project=project, name="train")
    prompt_set.prompts.set(train)

    policy, finished = base, []
    for method in ("dpo", "dpo", "ppo", "ppo"):
        round_ = rounds.launch_round(
            project_id=project.pk,
            policy_id=policy.pk,
            prompt_set_id=prompt_set.pk,
            method=method,
            hyperparameters=HYPERPARAMETERS[method],
            samples_per_prompt=8,
        )
        round_ = run_round(round_, pending, annotator.pk)
        print(
            f"round {round_.number} ({method}): {round_.snapshot.row_count} pairs, {round_.evaluation}"
        )
        assert round_.snapshot.row_count > 0
        # k1 is non-negative in expectation; 32 samples may dip a little below zero.
        assert 0.0 <= round_.evaluation["kl_to_parent"] < 20.0, round_.evaluation
        assert round_.result_version.parent == policy
        assert round_.result_version.data_snapshot_id == round_.snapshot_id
        policy = round_.result_version
        finished.append(round_)

    assert [r.number for r in finished] == [1, 2, 3, 4]
    assert finished[2].reward_model.method == "reward_model"
    assert finished[2].reward_model.metrics["eval_accuracy"] >= 0.7
    rate, kl, shares = compare_with_base(project, policy, base, held_out, annotator.pk)
    print(
        f"after 2 DPO + 2 PPO rounds (seed {SEED}), against the base: win rate {rate:.2f}, "
        f"{WORD!r} in {shares[policy.pk]:.0%} of the newest samples and {shares[base.pk]:.0%} of "
        f"the base's, KL to the base {kl:.2f} nats"
    )
    # Target 0.85, reached on the mean of seeds 0-4 (figures at the end). Earlier settings (kl_coef
    # 0.6, 4 minibatches, raw scores) gave 0.82, 0.82, 0.76, 0.71 and 0.85 at 5-12 nats from the
    # base; 64 comparisons give a standard error near 0.05.
    # What holds it back: the tiny tokenizer spells " apple" as five one-character tokens, and the
    # first PPO round's reward model keys on "red" (only the apple is red in the corpus): it scores
    # "a red appple" and "a red thepple" as high as "a red apple" (3.7 each against -3.8 for "cold
    # water", seed 1). PPO finds the misspellings, the annotator does not count them, and the
    # second round's reward model, which has seen some, unlearns them only in part.
    # Also tried, win rate by seed (in brackets): PPO learning rate 1e-3, 0.70 and 0.70 (3, 2);
    # 1e-3 with kl_coef 0.3, 0.75 and 0.75 (3, 2); missing-EOS penalty 3, 0.40 (3: answers of five
    # tokens) and 0.76 (2); 48 responses per rollout (24 prompts x 2) at kl_coef 0.6, 0.76 (3),
    # and at 0.3, 0.84, 0.66, 0.77, 0.82, 0.86 (0-4) at 11-14 nats; 12 DPO epochs a round, the
    # second round ends 33 nats from its parent, with EOS in one response of eight.
    # Reward models trained on every pair of the project so far, not the round's: 0.77, 0.77 (0, 1).
    # A tiny tokenizer of 512 tokens, where every corpus word (" apple" too) is one token: 0.66,
    # 0.68 (0, 1), with 'apple' in 59% and 53% of samples: misspellings are not what limits it alone.
    # kl_coef 1.0 in the first PPO round and 0.3 in the second: 0.78, 0.73 (0, 3).
    # Where the gain comes from (seed 0, apple in the rounds' held-out samples): 22% and 28% after
    # the DPO rounds (0.1 and 0.5 nats from their parents), 56% and 84% after the PPO rounds.
    # Stronger DPO did not carry through: TRL's ["sigmoid", "sft"] loss (an NLL term on the chosen
    # response) at learning rate 1e-3 raised apple after round 2 to 50% (seeds 0, 3), but the DPO
    # model sits 6 nats from the base and the loop still won 0.71 (3); learning rate 2e-3 ends the
    # second round 18 nats from its parent, garbled; beta 0.5 with it at 5e-4: 34% after round 2.
    # PPO on reward-model scores normalised per round (reward_normalization_samples 64: mean 0, std
    # 1 on the starting policy's responses; the scores' std is 2.4-3.5, so kl_coef 0.15 and an EOS
    # penalty of 0.4 match 0.6 and 1.0 here): 0.80, 0.77, 0.80, 0.77, 0.80 (0-4) at 8-13 nats, the
    # same mean, a narrower spread; kl_coef 0.1: 0.76, 0.75 (3, 1) at 17-19 nats (seed 1's third
    # round fell to "ple ."). kl_coef 0.2 on raw scores, EOS penalty 0.33: 0.87, 0.45, 0.81 (0, 2,
    # 3); seed 2's fourth round answers with EOS alone, where a short answer escapes the KL bill of
    # a policy that had wandered 20+ nats away (its entropy rose from 0.9 to 2.6 first).
    # Fewer, larger updates (normalised, kl_coef 0.15, EOS penalty 0.4): 2 minibatches x 2 epochs,
    # 0.70 (3) at 4 nats; 2 x 4, 0.73 (3) at 8 nats. Adaptive KL, horizon 100: 2 x 4 with target 4,
    # 0.73 (3); 4 x 4 with target 5, 0.69 (3). 2 x 4 with target 8 (the settings above): 0.79,
    # 0.81, 0.85, 0.84, 0.97 (0-4), mean 0.85, at 13-16 nats, in ~165 s (seed 0 the same on
    # PostgreSQL). 16 samples a prompt in every round instead of 8 (twice the pairs): 0.81, 0.84,
    # 0.78, 0.77 (21 nats), 0.85 (0-4), mean 0.81. Reward-model LoRA rank 32 (alpha 64): 0.77,
    # 0.84 (0, 1). Per-batch reward whitening (whiten_rewards) on top: 0.82, 0.94, 0.85, 0.79, 0.64
    # (0-4; seed 4 said apple in 39% of samples), mean 0.81, and 0.72 (5). The bound is below every seed with room for
    # two comparisons to flip (seed 0 wins 50.5 of 64), so a change of torch or platform does
    # not fail it on noise alone.
    assert rate >= 0.75
    assert 0 <= kl < 20.0
