"""Trained policies after the run: sampling, KL to a parent, merging an adapter into the base."""

import pytest
import torch
from peft import PeftModel

from training.engine.config import DPORunConfig, GenerationSettings, LoraSettings
from training.engine.dpo import train_dpo
from training.engine.loading import load_base_model, load_tokenizer
from training.engine.policy import (
    kl_to_parent,
    load_policy,
    merge_adapter,
    position_ids,
    sample,
)
from training.engine.tiny import demo_prompts

pytestmark = pytest.mark.slow

PROMPTS = [[{"role": "user", "content": p}] for p in demo_prompts()[:8]]


@pytest.fixture(scope="module")
def dpo_adapter(tiny_model_dir, tmp_path_factory, preference_pairs):
    config = DPORunConfig(
        base_model=tiny_model_dir,
        learning_rate=2e-3,
        max_steps=6,
        batch_size=16,
        gradient_accumulation_steps=1,
        max_length=64,
        lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
    )
    return train_dpo(config, preference_pairs(96), tmp_path_factory.mktemp("dpo")).adapter_dir


@pytest.mark.parametrize("with_adapter", [True, False])
def test_merged_sampling_gives_the_responses_of_the_policy_itself(
    tiny_model_dir, dpo_adapter, with_adapter
):
    policy = load_policy(tiny_model_dir, dpo_adapter if with_adapter else None)
    settings = GenerationSettings(max_new_tokens=12, num_samples=2)
    torch.manual_seed(0)
    direct = sample(policy, PROMPTS, settings, merged=False)
    torch.manual_seed(0)
    merged = sample(policy, PROMPTS, settings, merged=True)
    assert merged.texts == direct.texts
    assert policy.sampler is not None
    # The copy is kept for the next call rather than built again.
    sampler = policy.sampler
    sample(policy, PROMPTS[:2], settings, merged=True)
    assert policy.sampler is sampler


def test_sampled_version_differs_from_its_parent_and_not_from_itself(tiny_model_dir, dpo_adapter):
    policy = load_policy(tiny_model_dir, dpo_adapter)
    torch.manual_seed(0)
    out = sample(policy, PROMPTS, GenerationSettings(max_new_tokens=12, num_samples=2))
    assert len(out) == 16
    to_base = kl_to_parent(policy, out)
    to_itself = kl_to_parent(policy, out, dpo_adapter)
    assert to_base > 0.05
    assert to_itself == pytest.approx(0.0, abs=1e-4)


def test_kl_to_parent_agrees_with_the_kl_summed_over_the_vocabulary(tiny_model_dir, dpo_adapter):
    # The same KL computed another way: at each position of each sampled response, the exact KL
    # between the two next-token distributions, summed over the vocabulary. Both are unbiased for
    # KL(new || base) on the new version's samples, so on the same samples they must agree.
    policy = load_policy(tiny_model_dir, dpo_adapter)
    torch.manual_seed(0)
    out = sample(policy, PROMPTS[:4], GenerationSettings(max_new_tokens=12, num_samples=64))
    input_ids = torch.cat([out.query_ids, out.response_ids], dim=1)
    mask = torch.cat([out.query_mask, out.response_mask], dim=1)
    predicting = slice(out.query_ids.shape[1] - 1, input_ids.shape[1] - 1)
    model = policy.model

    def next_token_logprobs():
        with torch.no_grad():
            logits = model(
                input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask)
            ).logits[:, predicting]
        return torch.log_softmax(logits.float(), dim=-1)

    new = next_token_logprobs()
    with model.disable_adapter():
        base = next_token_logprobs()
    per_position = (new.exp() * (new - base)).sum(dim=-1) * out.response_mask
    exact = float(per_position.sum(dim=1).mean())

    estimate = kl_to_parent(policy, out)
    assert exact > 0.05
    assert estimate == pytest.approx(exact, rel=0.05)


def test_merged_weights_compute_what_base_plus_adapter_computes(
    tiny_model_dir, dpo_adapter, tmp_path
):
    merged_dir = merge_adapter(tiny_model_dir, dpo_adapter, tmp_path / "merged")
    assert merge_adapter(tiny_model_dir, dpo_adapter, tmp_path / "merged") == merged_dir
    tokenizer = load_tokenizer(str(merged_dir))
    ids = tokenizer(["<|user|>describe the cat<|assistant|>the cat"], return_tensors="pt")
    merged = load_base_model(str(merged_dir)).eval()
    adapted = PeftModel.from_pretrained(load_base_model(tiny_model_dir), str(dpo_adapter)).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            merged(**ids).logits, adapted(**ids).logits, atol=1e-4, rtol=1e-4
        )
        base = load_base_model(tiny_model_dir).eval()
        assert not torch.allclose(base(**ids).logits, adapted(**ids).logits, atol=1e-3)
