"""Where a reward-model training step spends its GPU time: the CUDA kernels of one engine step, grouped.

Builds the ~1B random-init Llama of engine_throughput.py, loads it the engine's way (bf16 LoRA or
QLoRA, fused kernels as configured), and runs forward + backward on 32 pairs of about 265 tokens a
side under bf16 autocast, as RewardTrainer does. Prints the step time and the kernels' time by group
(matrix products, attention, LoRA-sized products, elementwise, ...) and the top kernels, so the next
speed-up can aim at what costs most. Optionally times regionally compiled decoder layers as well.

    python benchmarks/profile_reward_step.py --workdir /tmp/engine-bench [--mode qlora] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from peft import get_peft_model  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.engine_throughput import LORA, build_random_llama  # noqa: E402
from training.engine.kernels import fuse_kernels  # noqa: E402
from training.engine.loading import (  # noqa: E402
    build_lora_config,
    load_base_model,
    load_tokenizer,
    prepare_for_training,
)
from training.engine.trl_runs import lora_training  # noqa: E402

GROUPS = [
    ("attention", ("fmha", "flash", "sdpa", "attention")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "matmul")),
    ("copy/cast", ("copy_kernel", "CatArray", "to_copy")),
    ("elementwise", ("elementwise_kernel",)),
    ("reduction", ("reduce_kernel", "Reduce")),
]


def group_of(name: str) -> str:
    for group, needles in GROUPS:
        if any(needle in name for needle in needles):
            return group
    # Triton kernels (Liger's, or inductor's when compiled) are named after their Python function.
    return "fused (triton)" if name.startswith(("_", "triton")) else "other"


def batch(tokenizer, pairs: int, tokens: int, vocab: int, device):
    """Right-padded chosen + rejected rows of about `tokens` tokens, lengths spread by a few percent."""
    lengths = torch.randint(int(tokens * 0.95), tokens + 1, (2 * pairs,))
    width = int(lengths.max())
    ids = torch.randint(3, min(vocab, 500), (2 * pairs, width))
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, tokenizer.pad_token_id)
    return ids.to(device), mask.to(device)


def step(model, ids, mask):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        scores = model(input_ids=ids, attention_mask=mask).logits[:, 0].float()
    chosen, rejected = scores.chunk(2)
    loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    loss.backward()
    return loss


def timed(model, ids, mask, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        step(model, ids, mask)
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/engine-bench"))
    parser.add_argument("--mode", choices=["lora", "qlora"], default="lora")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=265, help="tokens per side of a pair")
    parser.add_argument(
        "--unfused", action="store_true", help="leave transformers' norms and MLPs and PEFT's LoRA"
    )
    parser.add_argument("--compile", action="store_true", help="also time compiled decoder layers")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    path = build_random_llama(args.workdir, tiny=False)
    tokenizer = load_tokenizer(str(path))
    model = load_base_model(
        str(path), kind="reward", quantize=args.mode == "qlora", tokenizer=tokenizer
    )
    fused = fuse_kernels(model, False if args.unfused else None)
    model = prepare_for_training(model, gradient_checkpointing=False)
    model = get_peft_model(model, build_lora_config(LORA, kind="reward"))
    model.train()
    print(f"{args.mode}, {fused} fused norm and MLP modules", flush=True)
    # LoRA layers as reward and DPO runs train them: fused, without PEFT's fp32 round trip.
    with lora_training(model, fused=False if args.unfused else None, bf16=True):
        measure(model, tokenizer, args)


def measure(model, tokenizer, args) -> None:
    """Time steps, profile two of them, and, with --compile, time compiled decoder layers."""
    ids, mask = batch(tokenizer, args.pairs, args.tokens, model.config.vocab_size, model.device)
    tokens = int(mask.sum())
    print(f"batch {tuple(ids.shape)}, {tokens} tokens", flush=True)

    step_s = timed(model, ids, mask, 5)
    print(f"step {step_s * 1000:.1f} ms, {tokens / step_s:,.0f} tokens/s", flush=True)

    with profile(activities=[ProfilerActivity.CUDA]) as trace:
        for _ in range(2):
            step(model, ids, mask)
            model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
    kernels = [e for e in trace.key_averages() if e.device_time_total > 0]
    total = sum(e.device_time_total for e in kernels)
    by_group: dict[str, float] = defaultdict(float)
    for event in kernels:
        by_group[group_of(event.key)] += event.device_time_total
    print(f"GPU kernel time per step {total / 2 / 1000:.1f} ms")
    for group, spent in sorted(by_group.items(), key=lambda item: -item[1]):
        print(f"  {group:<22} {100 * spent / total:5.1f}%  {spent / 2 / 1000:7.1f} ms")
    print(f"top {args.top} kernels (per step: ms, calls):")
    for event in sorted(kernels, key=lambda e: -e.device_time_total)[: args.top]:
        print(
            f"  {event.device_time_total / 2 / 1000:7.2f} ms {event.count // 2:5d}x  "
            f"{event.key[:110]}"
        )
    sys.stdout.flush()

    if args.compile:
        started = time.perf_counter()
        for layer in model.get_base_model().model.layers:
            layer.compile(dynamic=False)
        step(model, ids, mask)
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        print(f"compiled layers: first step {time.perf_counter() - started:.1f} s", flush=True)
        step_s = timed(model, ids, mask, 5)
        print(f"compiled step {step_s * 1000:.1f} ms, {tokens / step_s:,.0f} tokens/s", flush=True)


if __name__ == "__main__":
    main()
