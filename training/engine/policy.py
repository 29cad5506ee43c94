"""A model version as a policy: load base + adapter, sample from it, and measure KL to another version.

Used by the Django glue to generate completions for annotation and to evaluate a new version against
its parent. One base model serves both sides of the KL: the two adapters are loaded by name and
switched, so no second copy of the base is held in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.engine.config import GenerationSettings
from training.engine.examples import Prompt
from training.engine.generation import Generations, encode_prompts, generate, render_prompt
from training.engine.loading import load_base_model, load_tokenizer
from training.engine.ppo_math import logprobs_from_logits, masked_mean


@dataclass
class Policy:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def load_policy(
    base_model: str, adapter_path: str | None = None, *, quantize: bool | None = None
) -> Policy:
    """The base model with `adapter_path` applied (if any), ready to sample."""
    tokenizer_source = (
        adapter_path
        if adapter_path and Path(adapter_path, "tokenizer_config.json").exists()
        else base_model
    )
    tokenizer = load_tokenizer(tokenizer_source)
    model = load_base_model(base_model, quantize=quantize, tokenizer=tokenizer)
    if adapter_path:
        model = PeftModel.from_pretrained(model, adapter_path, adapter_name="policy")
    model.eval()
    return Policy(model=model, tokenizer=tokenizer)


def sample(policy: Policy, prompts: Sequence[Prompt], settings: GenerationSettings) -> Generations:
    """`settings.num_samples` responses per prompt; see `training.engine.generation.generate`."""
    return generate(policy.model, policy.tokenizer, prompts, settings)


@torch.no_grad()
def response_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    responses: Sequence[str],
    batch_size: int = 16,
) -> list[torch.Tensor]:
    """Per-token log-probabilities of each response given its prompt, one 1-D tensor per response."""
    out: list[torch.Tensor] = []
    for start in range(0, len(prompts), batch_size):
        chunk_prompts = [render_prompt(tokenizer, p) for p in prompts[start : start + batch_size]]
        chunk_responses = list(responses[start : start + batch_size])
        query = encode_prompts(tokenizer, chunk_prompts)
        # Right-pad responses so each one starts right after its (left-padded) prompt.
        side, tokenizer.padding_side = tokenizer.padding_side, "right"
        try:
            answer = tokenizer(
                chunk_responses, add_special_tokens=False, padding=True, return_tensors="pt"
            )
        finally:
            tokenizer.padding_side = side
        input_ids = torch.cat([query["input_ids"], answer["input_ids"]], dim=1).to(model.device)
        mask = torch.cat([query["attention_mask"], answer["attention_mask"]], dim=1).to(
            model.device
        )
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        width = query["input_ids"].shape[1]
        # Logits at position t predict token t+1: the response tokens are predicted from width-1 on.
        predicted = logits[:, width - 1 : -1, :]
        token_logprobs = logprobs_from_logits(predicted, input_ids[:, width:])
        for row, row_mask in zip(token_logprobs, answer["attention_mask"], strict=True):
            out.append(row[row_mask.bool().to(row.device)].cpu())
    return out


def kl_to_parent(
    base_model: str,
    adapter_path: str,
    parent_adapter_path: str | None,
    prompts: Sequence[Prompt],
    responses: Sequence[str],
    *,
    quantize: bool | None = None,
) -> float:
    """Mean per-sequence KL(new || parent), estimated on responses sampled from the new version.

    The k1 estimator summed over response tokens (Schulman, "Approximating KL Divergence", 2020):
    an unbiased estimate when the responses are samples of the new policy.
    """
    if not prompts:
        raise ValueError("kl_to_parent needs at least one sampled response.")
    tokenizer = load_tokenizer(adapter_path)
    base = load_base_model(base_model, quantize=quantize, tokenizer=tokenizer)
    model = PeftModel.from_pretrained(base, adapter_path, adapter_name="new")
    model.eval()
    new = response_logprobs(model, tokenizer, prompts, responses)
    if parent_adapter_path:
        model.load_adapter(parent_adapter_path, adapter_name="parent")
        model.set_adapter("parent")
        parent = response_logprobs(model, tokenizer, prompts, responses)
    else:
        with model.disable_adapter():
            parent = response_logprobs(model, tokenizer, prompts, responses)
    per_sequence = torch.stack(
        [
            (n - p).sum() if n.numel() else torch.tensor(0.0)
            for n, p in zip(new, parent, strict=True)
        ]
    )
    return float(masked_mean(per_sequence, torch.ones_like(per_sequence)))


def merge_adapter(base_model: str, adapter_path: str, output_dir: str | Path) -> Path:
    """Fold an adapter into full-precision base weights and save them as a new base model.

    A child version trains a fresh adapter on top of its parent's merged weights, so the parent is
    both the starting policy and the frozen reference. Merging into a quantized base would round
    the update away, so the merge always loads the base unquantized.
    """
    output_dir = Path(output_dir)
    if (output_dir / "config.json").exists():
        return output_dir
    tokenizer = load_tokenizer(adapter_path)
    base = load_base_model(base_model, quantize=False, tokenizer=tokenizer)
    merged = PeftModel.from_pretrained(base, adapter_path).merge_and_unload()
    partial = output_dir.with_name(output_dir.name + ".partial")
    merged.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(output_dir)
    return output_dir
