"""A model version as a policy: load base + adapter, sample from it, and measure KL to another version.

Used by the Django glue to generate completions for annotation and to evaluate a new version against
its parent, and by PPO for its forward passes. One base model serves both sides of the KL: the two
adapters are loaded by name and switched, so no second copy of the base is held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.engine import ppo_math
from training.engine.config import GenerationSettings
from training.engine.examples import Prompt
from training.engine.generation import Generations, encode_prompts, generate, render_prompt
from training.engine.loading import load_base_model, load_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class Policy:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def load_policy(
    base_model: str, adapter_path: str | Path | None = None, *, quantize: bool | None = None
) -> Policy:
    """The base model with `adapter_path` applied (if any), ready to sample."""
    tokenizer = load_tokenizer(_tokenizer_source(base_model, adapter_path))
    model = load_base_model(base_model, quantize=quantize, tokenizer=tokenizer)
    if adapter_path:
        model = PeftModel.from_pretrained(model, str(adapter_path), adapter_name="policy")
    model.eval()
    return Policy(model=model, tokenizer=tokenizer)


def sample(policy: Policy, prompts: Sequence[Prompt], settings: GenerationSettings) -> Generations:
    """`settings.num_samples` responses per prompt; see `training.engine.generation.generate`."""
    return generate(policy.model, policy.tokenizer, prompts, settings)


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
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    responses: Sequence[str],
    batch_size: int = 16,
) -> list[torch.Tensor]:
    """Per-token log-probabilities of each response given its prompt, one 1-D tensor per response.

    Responses are re-tokenized from their text, which gives back the sampled tokens for the usual
    tokenizers.
    """
    out: list[torch.Tensor] = []
    for start in range(0, len(prompts), batch_size):
        chunk_prompts = [render_prompt(tokenizer, p) for p in prompts[start : start + batch_size]]
        query = encode_prompts(tokenizer, chunk_prompts)
        # Right-pad responses so each one starts right after its (left-padded) prompt.
        side, tokenizer.padding_side = tokenizer.padding_side, "right"
        try:
            answer = tokenizer(
                list(responses[start : start + batch_size]),
                add_special_tokens=False,
                padding=True,
                return_tensors="pt",
            )
        finally:
            tokenizer.padding_side = side
        device = model.device
        input_ids = torch.cat([query["input_ids"], answer["input_ids"]], dim=1).to(device)
        mask = torch.cat([query["attention_mask"], answer["attention_mask"]], dim=1).to(device)
        logprobs, _ = token_logprobs(model, input_ids, mask, answer["input_ids"].to(device))
        for row, row_mask in zip(logprobs, answer["attention_mask"], strict=True):
            out.append(row[row_mask.bool().to(row.device)].cpu())
    return out


def kl_to_parent(
    base_model: str,
    adapter_path: str | Path,
    parent_adapter_path: str | Path | None,
    prompts: Sequence[Prompt],
    responses: Sequence[str],
    *,
    quantize: bool | None = None,
) -> float:
    """Mean per-sequence KL(new || parent), estimated on responses sampled from the new version.

    The k1 estimator summed over response tokens (Schulman, "Approximating KL Divergence", 2020):
    an unbiased estimate when the responses are samples of the new policy. The parent is the base
    with `parent_adapter_path`, or the bare base when that is None.
    """
    if not prompts or len(prompts) != len(responses):
        raise ValueError("kl_to_parent needs one prompt per sampled response, and at least one.")
    tokenizer = load_tokenizer(_tokenizer_source(base_model, adapter_path))
    base = load_base_model(base_model, quantize=quantize, tokenizer=tokenizer)
    model = PeftModel.from_pretrained(base, str(adapter_path), adapter_name="new")
    model.eval()
    new = response_logprobs(model, tokenizer, prompts, responses)
    if parent_adapter_path:
        model.load_adapter(str(parent_adapter_path), adapter_name="parent")
        model.set_adapter("parent")
        parent = response_logprobs(model, tokenizer, prompts, responses)
    else:
        with model.disable_adapter():
            parent = response_logprobs(model, tokenizer, prompts, responses)
    per_sequence = [float((n - p).sum()) for n, p in zip(new, parent, strict=True)]
    return sum(per_sequence) / len(per_sequence)


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
