"""Where a whole reward-model training step's wall time goes, GPU idle time included.

profile_reward_step.py times forward and backward alone; a real engine run adds what transformers'
Trainer and TRL do around them (loading the batch, metrics, logging, clipping, the optimizer). This
runs the engine's `train_reward_model` on the ~1B random-init Llama (bf16 LoRA) and profiles three
steady steps: the wall time per step, the time the GPU ran kernels, and the Python functions the CPU
was in while the GPU sat idle.

    python benchmarks/profile_trainer_step.py --workdir /tmp/engine-bench [--mode qlora] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, schedule  # noqa: E402

from benchmarks.engine_throughput import (  # noqa: E402
    LORA,
    build_random_llama,
    fresh_dir,
    synthetic_pairs,
)
from training.engine.config import RewardRunConfig  # noqa: E402
from training.engine.loading import load_tokenizer  # noqa: E402
from training.engine.reward import train_reward_model  # noqa: E402

WAIT, WARMUP, ACTIVE = 4, 1, 3


def idle_gaps(trace: dict, minimum_us: float = 50.0) -> tuple[float, float, list[tuple]]:
    """(window µs, kernel-busy µs, [(gap µs, gap start)]) over the span of the traced kernels."""
    kernels = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in trace["traceEvents"]
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e
    )
    if not kernels:
        return 0.0, 0.0, []
    busy, gaps = 0.0, []
    start, end = kernels[0]
    for begin, finish in kernels[1:]:
        if begin > end:
            busy += end - start
            if begin - end >= minimum_us:
                gaps.append((begin - end, end))
            start, end = begin, finish
        else:
            end = max(end, finish)
    busy += end - start
    return kernels[-1][1] - kernels[0][0], busy, gaps


class PythonFrames:
    """The Python functions of a trace, to ask which were running at a moment."""

    def __init__(self, trace: dict):
        events = [
            e for e in trace["traceEvents"] if e.get("cat") == "python_function" and "dur" in e
        ]
        events.sort(key=lambda e: (e["ts"], -e["dur"]))
        self.names = [e["name"] for e in events]
        self.starts = np.array([e["ts"] for e in events], dtype=float)
        self.ends = self.starts + np.array([e["dur"] for e in events], dtype=float)

    def stack_at(self, moment: float) -> list[str]:
        """Outermost first."""
        (running,) = np.nonzero((self.starts <= moment) & (self.ends >= moment))
        return [self.names[i] for i in running]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--mode", choices=("lora", "qlora"), default="lora")
    parser.add_argument("--tiny", action="store_true", help="tiny model: a quick CPU smoke run")
    parser.add_argument("--trace", type=Path, default=None, help="also keep the Chrome trace here")
    args = parser.parse_args()

    model_path = build_random_llama(args.workdir, args.tiny)
    seq_len = 64 if args.tiny else 512
    steps = WAIT + WARMUP + ACTIVE + 1
    pairs = synthetic_pairs(32 * steps, seq_len, load_tokenizer(str(model_path)))
    config = RewardRunConfig(
        base_model=str(model_path),
        lora=LORA,
        max_steps=steps,
        max_length=seq_len,
        quantize=args.mode == "qlora",
        checkpoint_every=10_000,
        eval_fraction=0.0,
    )
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    times: list[float] = []
    trace_path = args.workdir / "trainer-trace.json"

    def on_trace(prof) -> None:
        prof.export_chrome_trace(str(trace_path))

    with profile(
        activities=activities,
        schedule=schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=1),
        on_trace_ready=on_trace,
        with_stack=True,
    ) as prof:

        def on_metrics(_metrics: dict) -> None:
            times.append(time.perf_counter())
            prof.step()

        train_reward_model(
            config, pairs, fresh_dir(args.workdir / "profiled-run"), on_metrics=on_metrics
        )

    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # The steps before the profiler started, less the first two (allocation, autotuning).
    print(f"step wall, unprofiled: {statistics.median(gaps[2:WAIT]) * 1e3:.1f} ms")
    print(f"step wall, profiled: {[round(g * 1e3, 1) for g in gaps[WAIT:]]} ms")

    trace = json.loads(trace_path.read_text())
    window, busy, idle = idle_gaps(trace)
    print(
        f"{ACTIVE} profiled steps: window {window / 1e3:.1f} ms, GPU busy {busy / 1e3:.1f} ms "
        f"({busy / max(window, 1):.0%}), idle gaps >= 50 µs: {sum(g for g, _ in idle) / 1e3:.1f} ms"
    )
    frames = PythonFrames(trace)
    by_place: dict[str, float] = defaultdict(float)
    for gap, start in idle:
        stack = frames.stack_at(start + gap / 2)
        # The innermost frames that name a library file say where the CPU was.
        place = " < ".join(reversed([s for s in stack if ".py(" in s][-3:])) or "(no Python frame)"
        by_place[place] += gap
    print("GPU idle time by where the CPU was (innermost first):")
    for place, total in sorted(by_place.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {total / 1e3:8.2f} ms  {place}")
    if args.trace:
        args.trace.parent.mkdir(parents=True, exist_ok=True)
        args.trace.write_text(trace_path.read_text())


if __name__ == "__main__":
    main()
