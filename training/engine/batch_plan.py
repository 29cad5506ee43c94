"""Pick micro-batch size, gradient accumulation and gradient checkpointing from free GPU memory.

A short probe runs one forward+backward pass at batch 1 and at batch 2 on random tokens of the real
sequence length, with the base frozen and gradients flowing to the activations, as in adapter training.
Peak memory is close to linear in the batch, so the two points give a fixed cost and a cost per sequence,
and the plan is the largest micro-batch whose predicted peak fits in `memory_fraction` of what is free.
Checkpointing (recompute activations in the backward pass, about a third more compute) is only switched
on when, without it, not even a micro-batch of `min(target, 4)` sequences would fit.
LoRA's own activations (rank/hidden of the base's) and the adapter's optimizer state are left out of the
probe; `memory_fraction` leaves the headroom for them.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

CPU_MICRO_BATCH = 8


@dataclass(frozen=True)
class BatchPlan:
    micro_batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    # Predicted peak memory of one micro-batch step in GiB (None on CPU, where nothing is probed).
    predicted_peak_gb: float | None
    reason: str


def choose_batch_plan(
    model: PreTrainedModel,
    *,
    seq_len: int,
    target_batch_size: int | None = None,
    gradient_checkpointing: bool | None = None,
    sequences_per_example: int = 1,
    memory_fraction: float = 0.8,
    max_micro_batch: int = 64,
    reserved_bytes: int = 0,
) -> BatchPlan:
    """Plan for `target_batch_size` examples per optimizer step (default 32 on CUDA, 8 on CPU).

    `sequences_per_example` is 2 for pairwise runs, where each example is a chosen and a rejected
    sequence. An explicit `gradient_checkpointing` is respected and only the batch is planned.
    `reserved_bytes` is memory that something allocated after the plan will take (PPO's merged
    sampling copy), kept out of the budget.
    """
    if not torch.cuda.is_available() or model.device.type != "cuda":
        target = target_batch_size or CPU_MICRO_BATCH
        micro = min(target, CPU_MICRO_BATCH)
        return BatchPlan(
            micro_batch_size=micro,
            gradient_accumulation_steps=math.ceil(target / micro),
            gradient_checkpointing=bool(gradient_checkpointing),
            predicted_peak_gb=None,
            reason="no CUDA: fixed CPU plan, nothing probed",
        )

    target = target_batch_size or 32
    modes = [gradient_checkpointing] if gradient_checkpointing is not None else [False, True]
    plan = None
    for checkpointing in modes:
        fixed, per_sequence, budget = _probe(model, seq_len, checkpointing, memory_fraction)
        budget -= reserved_bytes
        fitting = int((budget - fixed) // max(per_sequence, 1)) // sequences_per_example
        micro = max(1, min(target, max_micro_batch, _floor_power_of_two(fitting)))
        plan = BatchPlan(
            micro_batch_size=micro,
            gradient_accumulation_steps=math.ceil(target / micro),
            gradient_checkpointing=checkpointing,
            predicted_peak_gb=(fixed + per_sequence * micro * sequences_per_example) / 2**30,
            reason=(
                f"probe at seq_len {seq_len}: fixed {fixed / 2**30:.2f} GiB, "
                f"{per_sequence / 2**20:.0f} MiB per sequence, budget {budget / 2**30:.2f} GiB"
                f"{' with' if checkpointing else ' without'} gradient checkpointing"
            ),
        )
        if fitting >= min(target, 4):
            break
    logger.info("Batch plan: %s", plan)
    return plan


def _floor_power_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n >= 1 else 0


def _probe(
    model: PreTrainedModel, seq_len: int, checkpointing: bool, memory_fraction: float
) -> tuple[int, int, int]:
    """(fixed bytes, bytes per sequence, byte budget) measured with a frozen base."""
    was_checkpointing = getattr(model, "is_gradient_checkpointing", False)
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    # Gradients must flow through the activations, as they do with trainable adapters inside.
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _module, _inputs, output: output.requires_grad_(True)
    )
    if checkpointing and not was_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif not checkpointing and was_checkpointing:
        model.gradient_checkpointing_disable()
    # Decoders would otherwise build a KV cache that training never holds; encoders take no flag.
    extra = (
        {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}
    )
    peaks = []
    try:
        torch.cuda.empty_cache()
        free, _total = torch.cuda.mem_get_info()
        in_use = torch.cuda.memory_allocated()
        budget = int(in_use + memory_fraction * free)
        for batch in (1, 2):
            torch.cuda.reset_peak_memory_stats()
            ids = torch.randint(
                0,
                model.get_input_embeddings().weight.shape[0],
                (batch, seq_len),
                device=model.device,
            )
            output = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
            output.logits.float().mean().backward()
            del output
            peaks.append(torch.cuda.max_memory_allocated())
    finally:
        hook.remove()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(requires_grad[name])
        if checkpointing and not was_checkpointing:
            model.gradient_checkpointing_disable()
        elif not checkpointing and was_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
    per_sequence = max(peaks[1] - peaks[0], 1)
    return peaks[0] - per_sequence, per_sequence, budget
