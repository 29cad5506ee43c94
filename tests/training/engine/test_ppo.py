"""PPO end to end on the tiny model: learns a rule-based reward with bounded KL, resumes exactly,
cancels, and runs against a trained reward model."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from training.engine.config import (
    GenerationSettings,
    LoraSettings,
    PPORunConfig,
    RewardRunConfig,
)
from training.engine.loading import load_base_model
from training.engine.ppo import train_ppo
from training.engine.reward import train_reward_model
from training.engine.runs import RunCancelled
from training.engine.tiny import demo_prompts

pytestmark = pytest.mark.slow

PROMPTS = [[{"role": "user", "content": p}] for p in demo_prompts()]


def mentions_blue(texts: list[str]) -> list[float]:
    """1 when the response (after the assistant marker) says "blue", else 0."""
    return [1.0 if "blue" in text.split("<|assistant|>")[-1] else 0.0 for text in texts]


def ppo_config(base_model: str, **overrides) -> PPORunConfig:
    values = dict(
        base_model=base_model,
        learning_rate=3e-3,
        total_steps=20,
        prompts_per_step=16,
        ppo_epochs=4,
        num_minibatches=2,
        generation=GenerationSettings(max_new_tokens=16, temperature=1.0),
        lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
        kl_coef=0.05,
    )
    return PPORunConfig(**{**values, **overrides})


def test_ppo_raises_rule_based_reward_while_kl_stays_bounded(tiny_model_dir, tmp_path):
    reports = []
    result = train_ppo(
        ppo_config(tiny_model_dir),
        PROMPTS,
        tmp_path,
        reward_fn=mentions_blue,
        on_metrics=reports.append,
    )
    rewards = [row["reward_mean"] for row in reports]
    start, end = sum(rewards[:3]) / 3, sum(rewards[-5:]) / 5
    assert end > start + 0.2, rewards
    assert max(row["kl"] for row in reports) < 15.0
    # Policy and reference are the same model before the first update; after it the reference
    # stays the base (were it the policy, the KL would stay 0 and the penalty do nothing).
    assert reports[0]["kl"] == pytest.approx(0.0, abs=1e-4)
    assert min(row["kl"] for row in reports[-5:]) > 0.5
    assert {
        "loss",
        "reward_std",
        "clip_fraction",
        "value_loss",
        "learning_rate",
        "tokens_per_s",
        "gpu_memory_gb",
    } <= set(reports[-1])
    assert 0.0 < reports[0]["clip_fraction"] < 1.0

    base = load_base_model(tiny_model_dir)
    policy = PeftModel.from_pretrained(base, str(result.adapter_dir))
    assert "default" in policy.peft_config
    assert (result.adapter_dir / "tokenizer_config.json").exists()
    assert json.loads(result.metrics_path.read_text())["final"]["step"] == 20


def test_ppo_resumes_after_cancel_exactly_as_an_uninterrupted_run(tiny_model_dir, tmp_path):
    config = ppo_config(
        tiny_model_dir,
        total_steps=4,
        checkpoint_every=2,
        prompts_per_step=8,
        ppo_epochs=1,
        num_minibatches=1,
        generation=GenerationSettings(max_new_tokens=8, temperature=1.0),
        # Fitted once at the start; a resumed run must take it from the checkpoint.
        reward_normalization_samples=16,
    )
    straight = train_ppo(config, PROMPTS, tmp_path / "straight", reward_fn=mentions_blue)

    polls = []

    def cancel_before_fourth_step():
        polls.append(True)
        return len(polls) >= 4

    interrupted = tmp_path / "interrupted"
    with pytest.raises(RunCancelled) as cancelled:
        train_ppo(
            config,
            PROMPTS,
            interrupted,
            reward_fn=mentions_blue,
            should_cancel=cancel_before_fourth_step,
        )
    assert cancelled.value.step == 3
    assert (interrupted / "checkpoints" / "checkpoint-2").is_dir()

    resumed = train_ppo(config, PROMPTS, interrupted, reward_fn=mentions_blue)
    assert resumed.resumed_from_step == 2
    normalization = {
        key: straight.final_metrics[key]
        for key in ("reward_normalization_mean", "reward_normalization_std")
    }
    assert normalization == {key: resumed.final_metrics[key] for key in normalization}
    assert normalization != {"reward_normalization_mean": 0.0, "reward_normalization_std": 1.0}
    history = json.loads(resumed.metrics_path.read_text())["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4]

    straight_weights = load_file(straight.adapter_dir / "adapter_model.safetensors")
    resumed_weights = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert straight_weights.keys() == resumed_weights.keys()
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-4, atol=1e-5)
    assert any(t.abs().sum() > 0 for n, t in straight_weights.items() if "lora_B" in n)


def test_ppo_against_a_trained_reward_model_with_adaptive_kl(
    tiny_model_dir, tmp_path, preference_pairs
):
    reward = train_reward_model(
        RewardRunConfig(
            base_model=tiny_model_dir,
            learning_rate=3e-3,
            max_steps=4,
            batch_size=16,
            gradient_accumulation_steps=1,
            max_length=64,
            eval_fraction=0.0,
            lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        ),
        preference_pairs(64),
        tmp_path / "reward",
    )
    reports = []
    train_ppo(
        ppo_config(
            tiny_model_dir,
            total_steps=2,
            prompts_per_step=8,
            ppo_epochs=1,
            num_minibatches=1,
            target_kl=0.01,
            kl_horizon=100,
            kl_estimator="k3",
            whiten_rewards=True,
        ),
        PROMPTS,
        tmp_path / "ppo",
        reward_model_path=reward.adapter_dir,
        on_metrics=reports.append,
    )
    assert len(reports) == 2
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in reports)
    assert reports[0]["reward_std"] > 0
    # The adaptive controller follows each step's KL: 8 responses a step, horizon 100, target 0.01.
    expected = 0.05
    for row in reports:
        error = min(max(row["kl"] / 0.01 - 1.0, -0.2), 0.2)
        expected *= 1.0 + error * 8 / 100
        assert row["kl_coef"] == pytest.approx(expected)
    assert reports[0]["kl_coef"] != 0.05


def test_train_ppo_wants_exactly_one_reward(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        train_ppo(ppo_config(tiny_model_dir), PROMPTS, tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        train_ppo(
            ppo_config(tiny_model_dir),
            PROMPTS,
            tmp_path,
            reward_fn=mentions_blue,
            reward_model_path=tmp_path,
        )
