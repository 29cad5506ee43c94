"""A model version as a policy: load base + adapter, sample from it, and measure KL to another version.

Used by the Django glue to generate completions for annotation and to evaluate a new version against
its parent, and by PPO for its forward passes. One base model serves both sides of the KL: the two
adapters are loaded by name and switched, so no second copy of the base is held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.engine import ppo_math
from training.engine.config import GenerationSettings
from training.engine.examples import Prompt
from training.engine.generation import Generations, generate
from training.engine.loading import load_base_model, load_tokenizer
from training.engine.sampler import MergedSampler, merged_copy_fits

logger = logging.getLogger(__name__)

POLICY_ADAPTER = "policy"


@dataclass
class Policy:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    # Built on the first merged `sample` call and kept: the policy's weights do not change.
    sampler: MergedSampler | None = field(default=None, repr=False)


def load_policy(
    base_model: str, adapter_path: str | Path | None = None, *, quantize: bool | None = None
) -> Policy:
    """The base model with `adapter_path` applied (if any), ready to sample."""
    tokenizer = load_tokenizer(_tokenizer_source(base_model, adapter_path))
    model = load_base_model(base_model, quantize=quantize, tokenizer=tokenizer)
    if adapter_path:
        model = PeftModel.from_pretrained(model, str(adapter_path), adapter_name=POLICY_ADAPTER)
    model.eval()
    return Policy(model=model, tokenizer=tokenizer)


def sample(
    policy: Policy,
    prompts: Sequence[Prompt],
    settings: GenerationSettings,
    *,
    merged: bool | None = None,
) -> Generations:
    """`settings.num_samples` responses per prompt; see `training.engine.generation.generate`.

    `merged` (default: on CUDA, when the copy takes at most half the free memory) samples from a
    merged, unquantized copy of the policy decoded with a compiled static cache
    (training/engine/sampler.py): an order of magnitude faster on a 4-bit base, for one more copy of
    the weights in bf16. The responses follow the same distribution.
    """
    if merged is None:
        merged = policy.sampler is not None or (
            policy.model.device.type == "cuda" and merged_copy_fits(policy.model)
        )
    if not merged:
        return generate(policy.model, policy.tokenizer, prompts, settings)
    if policy.sampler is None:
        policy.sampler = MergedSampler(policy.model, POLICY_ADAPTER)
    return policy.sampler.generate(policy.tokenizer, prompts, settings)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    # Left padding shifts every prompt; positions count real tokens only, as `generate` counts them.
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def token_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_ids: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(token), entropy), [batch, response_len], for the response tokens under the model's
    active adapters. `input_ids` is the left-padded prompt followed by the right-padded response.
    Logits are divided by `temperature`, as sampling divided them (Huang et al. 2024)."""
    response_len = response_ids.shape[1]
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        # Logits only where response tokens are predicted: the last response_len + 1 positions.
        logits_to_keep=response_len + 1,
        use_cache=False,
    )
    logits = output.logits[:, :-1] / temperature
    logprobs = ppo_math.logprobs_from_logits(logits, response_ids)
    with torch.no_grad():
        entropy = ppo_math.entropy_from_logits(logits)
    return logprobs, entropy


@torch.no_grad()
def response_logprobs(
    model: PreTrainedModel,
    generations: Generations,
    *,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> torch.Tensor:
    """Log-probability of each sampled response token, [num_responses, response_len] (0 at
    padding), under `model`'s active adapters. Scores the exact sampled token ids, so no
    re-tokenization can shift the estimate."""
    rows_logprobs = []
    for start in range(0, len(generations.texts), batch_size):
        rows = slice(start, start + batch_size)
        query_ids, response_ids = generations.query_ids[rows], generations.response_ids[rows]
        response_mask = generations.response_mask[rows]
        input_ids = torch.cat([query_ids, response_ids], dim=1).to(model.device)
        mask = torch.cat([generations.query_mask[rows], response_mask], dim=1).to(model.device)
        logprobs, _ = token_logprobs(
            model, input_ids, mask, response_ids.to(model.device), temperature
        )
        rows_logprobs.append((logprobs.float() * response_mask.to(logprobs.device)).cpu())
    return torch.cat(rows_logprobs)


def sequence_logprobs(
    model: PreTrainedModel, generations: Generations, *, temperature: float = 1.0
) -> torch.Tensor:
    """Summed log-probability of each sampled response, [num_responses], under `model`."""
    return response_logprobs(model, generations, temperature=temperature).sum(dim=1)


def kl_to_parent(
    policy: Policy,
    generations: Generations,
    parent_adapter_path: str | Path | None = None,
    *,
    temperature: float = 1.0,
) -> float:
    """Mean per-sequence KL(new || parent), estimated on `generations` sampled from `policy`.

    The k3 estimator per response token, summed over the response (Schulman, "Approximating KL
    Divergence", 2020): unbiased when the responses are samples of the new policy at
    `temperature`, like k1, but never negative and with less variance, so a version that barely
    moved reads as a KL near 0, not as a negative one. The parent is the same base with
    `parent_adapter_path`, or the bare base (adapters off) when that is None.
    """
    if not generations.texts:
        raise ValueError("kl_to_parent needs at least one sampled response.")
    model = policy.model
    new = response_logprobs(model, generations, temperature=temperature)
    if parent_adapter_path:
        model.load_adapter(str(parent_adapter_path), adapter_name="parent")
        model.set_adapter("parent")
        try:
            parent = response_logprobs(model, generations, temperature=temperature)
        finally:
            model.set_adapter(POLICY_ADAPTER)
            model.delete_adapter("parent")
    elif isinstance(model, PeftModel):
        with model.disable_adapter():
            parent = response_logprobs(model, generations, temperature=temperature)
    else:
        parent = new
    # Padding holds 0 on both sides, where k3 is 0 too.
    return float(ppo_math.kl_k3(new, parent).sum(dim=1).mean())


def merge_adapter(base_model: str, adapter_path: str | Path, output_dir: str | Path) -> Path:
    """Fold an adapter into full-precision base weights and save them as a new base model.

    A child version trains a fresh adapter on top of its parent's merged weights, so the parent is
    both the starting policy and the frozen reference. Merging into a quantized base would round
    the update away, so the merge always loads the base unquantized (bf16 on CUDA, fp32 on CPU).
    """
    output_dir = Path(output_dir)
    if (output_dir / "config.json").exists():
        return output_dir
    tokenizer = load_tokenizer(_tokenizer_source(base_model, adapter_path))
    base = load_base_model(base_model, quantize=False, tokenizer=tokenizer)
    merged = PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()
    # Written beside the target and renamed, so a killed merge never looks finished.
    partial = output_dir.with_name(output_dir.name + ".partial")
    merged.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(output_dir)
    logger.info("Merged %s into %s at %s.", adapter_path, base_model, output_dir)
    return output_dir


def _tokenizer_source(base_model: str, adapter_path: str | Path | None) -> str:
    # Engine runs save the tokenizer beside the adapter; older or foreign adapters may not.
    if adapter_path and Path(adapter_path, "tokenizer_config.json").exists():
        return str(adapter_path)
    return base_model
