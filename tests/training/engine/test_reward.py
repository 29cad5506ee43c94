"""Reward models: learn an easy preference, report held-out accuracy, save, load, resume, cancel."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification

from training.engine.config import LoraSettings, RewardRunConfig
from training.engine.examples import PreferencePair
from training.engine.loading import load_tokenizer
from training.engine.reward import encode_for_reward, load_reward_model, train_reward_model
from training.engine.runs import RunCancelled

pytestmark = pytest.mark.slow


def reward_config(base_model: str, **overrides) -> RewardRunConfig:
    values = dict(
        base_model=base_model,
        learning_rate=3e-3,
        batch_size=16,
        gradient_accumulation_steps=1,
        eval_fraction=0.25,
        max_length=64,
        lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
    )
    return RewardRunConfig(**{**values, **overrides})


def flipped(pairs):
    return [PreferencePair(prompt=p.prompt, chosen=p.rejected, rejected=p.chosen) for p in pairs]


@pytest.fixture(scope="module")
def trained_reward(tiny_model_dir, tmp_path_factory, preference_pairs):
    pairs = preference_pairs(160)
    # Half the pairs carry a margin: the loss then asks for r_c - r_r > margin.
    pairs = [
        PreferencePair(p.chosen, p.rejected, p.prompt, 0.5 if i % 2 else None)
        for i, p in enumerate(pairs)
    ]
    reports = []
    result = train_reward_model(
        reward_config(tiny_model_dir),
        pairs,
        tmp_path_factory.mktemp("reward"),
        on_metrics=reports.append,
    )
    return result, reports


def test_reward_model_learns_easy_preference_and_reports_heldout_accuracy(trained_reward):
    result, reports = trained_reward
    assert result.final_metrics["eval_pairs"] == 40
    assert result.final_metrics["eval_accuracy"] >= 0.9
    assert reports[-1]["loss"] < reports[0]["loss"]
    assert {"step", "loss", "accuracy", "learning_rate", "tokens_per_s", "gpu_memory_gb"} <= set(
        reports[-1]
    )
    saved = json.loads(result.metrics_path.read_text())
    assert saved["final"]["eval_accuracy"] == result.final_metrics["eval_accuracy"]
    assert [row["step"] for row in saved["history"]] == [row["step"] for row in reports]


def test_reversed_preference_is_learned_too(tiny_model_dir, tmp_path, preference_pairs):
    # Rules out a lucky initialisation: the same data with the labels swapped must also be learned.
    result = train_reward_model(
        reward_config(tiny_model_dir), flipped(preference_pairs(160)), tmp_path
    )
    assert result.final_metrics["eval_accuracy"] >= 0.9


def test_saved_reward_model_loads_and_scores_like_the_trained_one(
    trained_reward, tiny_model_dir, preference_pairs
):
    result, _ = trained_reward
    reward_model = load_reward_model(result.adapter_dir)
    held_out = preference_pairs(40, seed=7)
    assert reward_model.pairwise_accuracy(held_out) >= 0.9

    # The adapter directory is a plain PEFT artifact: the score head travels with it.
    tokenizer = load_tokenizer(str(result.adapter_dir))
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
    text = "<|user|>describe the cat<|assistant|>the cat sees the blue sky ."
    ids = torch.tensor([encode_for_reward(tokenizer, text, 64)])
    with torch.no_grad():
        direct = model(input_ids=ids).logits[0, 0].item()
    assert direct == pytest.approx(reward_model.score([text])[0], abs=1e-4)


def test_reward_run_cancels_and_resumes_from_its_checkpoint(
    tiny_model_dir, tmp_path, preference_pairs
):
    pairs = preference_pairs(64)
    config = reward_config(tiny_model_dir, max_steps=6, checkpoint_every=2, batch_size=8)
    polls = []

    def cancel_on_third_poll():
        # Polled once after every optimizer step.
        polls.append(True)
        return len(polls) >= 3

    with pytest.raises(RunCancelled) as cancelled:
        train_reward_model(config, pairs, tmp_path, should_cancel=cancel_on_third_poll)
    assert cancelled.value.step == 3
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()

    result = train_reward_model(config, pairs, tmp_path)
    assert result.resumed_from_step == 2
    assert result.steps == 6
    history = json.loads(result.metrics_path.read_text())["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4, 5, 6]
