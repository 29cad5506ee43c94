"""The merged sampler: a plain copy of the policy that must give the PEFT policy's own distribution."""

import pytest
import torch
from peft import get_peft_model

from training.engine.config import GenerationSettings, LoraSettings
from training.engine.loading import build_lora_config, load_base_model, load_tokenizer
from training.engine.sampler import MergedSampler, copy_bytes, merged_copy_fits
from training.engine.tiny import demo_prompts


@pytest.fixture
def policy_with_critic(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    base = load_base_model(tiny_model_dir, quantize=False, tokenizer=tokenizer)
    lora = build_lora_config(LoraSettings(rank=4, alpha=8, dropout=0.0))
    model = get_peft_model(base, lora, adapter_name="policy")
    model.add_adapter("critic", build_lora_config(LoraSettings(rank=4, alpha=8, dropout=0.0)))
    model.eval()
    return model, tokenizer


def _randomise(model, adapter, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if f".{adapter}." in name and "lora_" in name:
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_merged_copy_gives_the_policy_logits_and_follows_updates(policy_with_critic):
    model, tokenizer = policy_with_critic
    # A trained-looking policy and a critic that must not leak into the policy's copy.
    _randomise(model, "policy", seed=0)
    _randomise(model, "critic", seed=1)
    sampler = MergedSampler(model, "policy")
    ids = tokenizer(demo_prompts()[:3], return_tensors="pt", padding=True)["input_ids"]

    model.set_adapter("policy")
    policy_logits = _logits(model, ids)
    with model.disable_adapter():
        base_logits = _logits(model, ids)
    assert (policy_logits - base_logits).abs().max() > 0.1  # the adapter really changes the model
    torch.testing.assert_close(_logits(sampler.model, ids), policy_logits, atol=1e-4, rtol=1e-4)

    # An optimizer step changes the adapter in place; the copy follows only once synced.
    _randomise(model, "policy", seed=2)
    updated_logits = _logits(model, ids)
    assert not torch.allclose(_logits(sampler.model, ids), updated_logits, atol=1e-3)
    sampler.sync()
    torch.testing.assert_close(_logits(sampler.model, ids), updated_logits, atol=1e-4, rtol=1e-4)


def test_merged_copy_samples_like_the_policy(policy_with_critic):
    model, tokenizer = policy_with_critic
    _randomise(model, "policy", seed=3)
    sampler = MergedSampler(model, "policy")
    settings = GenerationSettings(max_new_tokens=10, num_samples=2, temperature=0.7)
    prompts = [[{"role": "user", "content": p}] for p in demo_prompts()[:4]]

    from training.engine.generation import generate

    torch.manual_seed(0)
    through_adapter = generate(model, tokenizer, prompts, settings)
    torch.manual_seed(0)
    through_copy = sampler.generate(tokenizer, prompts, settings)
    # Same logits and the same random stream: the same tokens.
    assert through_copy.texts == through_adapter.texts
    assert through_copy.token_counts == through_adapter.token_counts


def test_the_copy_does_not_share_storage_with_the_policy(policy_with_critic):
    model, _ = policy_with_critic
    sampler = MergedSampler(model, "policy")
    policy_pointers = {p.data_ptr() for p in model.parameters()}
    assert not policy_pointers & {p.data_ptr() for p in sampler.model.parameters()}
    assert not any(p.requires_grad for p in sampler.model.parameters())


def test_the_copy_is_sized_without_the_adapters(policy_with_critic):
    model, _ = policy_with_critic
    base_parameters = sum(
        p.numel() for name, p in model.get_base_model().named_parameters() if "lora_" not in name
    )
    assert copy_bytes(model) == 4 * base_parameters  # fp32 on the CPU
    sampler = MergedSampler(model, "policy")
    assert copy_bytes(model) == sum(
        p.numel() * p.element_size() for p in sampler.model.parameters()
    )
    assert merged_copy_fits(model)  # nothing to check against on the CPU
