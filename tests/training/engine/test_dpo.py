"""DPO through TRL on LoRA: the chosen-minus-rejected margin rises and samples shift towards it."""

import pytest
import torch
from peft import PeftModel

from training.engine.config import DPORunConfig, GenerationSettings, LoraSettings
from training.engine.dpo import train_dpo
from training.engine.generation import generate
from training.engine.loading import load_base_model, load_tokenizer
from training.engine.tiny import demo_prompts

pytestmark = pytest.mark.slow


def blue_share(model, tokenizer) -> float:
    torch.manual_seed(0)
    prompts = [[{"role": "user", "content": p}] for p in demo_prompts()]
    out = generate(model, tokenizer, prompts, GenerationSettings(max_new_tokens=20, num_samples=4))
    return sum("blue" in text for text in out.texts) / len(out)


def test_dpo_raises_margin_and_grows_preferred_behaviour(
    tiny_model_dir, tmp_path, preference_pairs
):
    reports = []
    config = DPORunConfig(
        base_model=tiny_model_dir,
        learning_rate=2e-3,
        beta=0.1,
        batch_size=16,
        gradient_accumulation_steps=1,
        max_length=64,
        lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
    )
    result = train_dpo(config, preference_pairs(256), tmp_path, on_metrics=reports.append)

    # The policy starts as the reference (LoRA B = 0), so the first margin is 0.
    assert reports[0]["margin"] == pytest.approx(0.0, abs=1e-4)
    assert reports[-1]["margin"] > 0.5
    assert reports[-1]["accuracy"] >= 0.9
    assert result.final_metrics["step"] == 16

    tokenizer = load_tokenizer(tiny_model_dir)
    base = load_base_model(tiny_model_dir, tokenizer=tokenizer)
    before = blue_share(base, tokenizer)
    policy = PeftModel.from_pretrained(base, str(result.adapter_dir))
    after = blue_share(policy, tokenizer)
    assert after > before + 0.1, (before, after)
