"""Throughput of the training engine on a ~1B random-init Llama: reward, DPO and PPO steps, and rollouts.

For each of 4-bit QLoRA and bf16 LoRA it measures step time, tokens/s, peak GPU memory and MFU of

* the engine's reward-model and DPO runs (batch size and gradient checkpointing chosen by
  `choose_batch_plan` from free GPU memory) next to plain TRL RewardTrainer / DPOTrainer scripts with
  TRL's defaults (batch 8, gradient checkpointing on) on the same model, LoRA and data;
* the engine's PPO loop (rollout + update), sampling through the adapter and through the merged copy;
* rollout generation at batch 64: plain `generate` through the adapter (dynamic KV cache) against the
  merged sampler's copy (training/engine/sampler.py), eager and with a static cache compiled into CUDA
  graphs.

MFU = achieved FLOPs / peak FLOPs, with achieved FLOPs = 6 * N * tokens/s for training (Kaplan et al.
2020, eq. 2.1; PaLM, Chowdhery et al. 2022, appendix B) and 2 * N * tokens/s for decoding, where N is
the parameter count without the input embedding and the peak is the H100 SXM's dense bf16 989.4
TFLOP/s (override with --peak-tflops). 6N is the usual convention, kept for comparability: with a
frozen base the backward pass skips weight gradients (about 4N), gradient checkpointing recomputes the
forward (+2N), and DPO adds a reference forward (+2N), so the true count differs by up to a third.

Run on a GPU machine (see shared/gpu/README.md for installing trl, bitsandbytes and datasets there):

    python benchmarks/engine_throughput.py                 # ~1B model, both modes, JSON in var/
    python benchmarks/engine_throughput.py --tiny          # tiny model, a CPU smoke run in seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback  # noqa: E402

from training.engine.config import (  # noqa: E402
    DPORunConfig,
    GenerationSettings,
    LoraSettings,
    PPORunConfig,
    RewardRunConfig,
)
from training.engine.examples import PreferencePair  # noqa: E402
from training.engine.tiny import build_tiny_model, build_tiny_tokenizer, demo_conversations  # noqa: E402

H100_BF16_DENSE_TFLOPS = 989.4
LORA = LoraSettings(rank=16, alpha=32, dropout=0.0)


def build_random_llama(root: Path, tiny: bool) -> Path:
    """A random-init Llama saved with a small BPE tokenizer: ~1B parameters, or the tiny test model.

    The 1B shape is Llama 3.2 1B's (hidden 2048, 16 layers, GQA 32/8 heads, MLP 8192) with a 32k
    vocabulary; the tokenizer only uses its first few hundred ids, which changes nothing in the cost.
    """
    path = root / ("tiny-llama" if tiny else "llama-1b")
    if (path / "config.json").exists():  # built by an earlier run with the same --workdir
        return path
    if tiny:
        return build_tiny_model(path, pretrain_steps=0)
    tokenizer = build_tiny_tokenizer([p + " " + r for p, r in demo_conversations()])
    config = LlamaConfig(
        vocab_size=32_000,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    # Initialised on the GPU when there is one: a 1B random init takes minutes on a CPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def parameter_count(path: Path) -> int:
    """N for the FLOP count: every parameter except the input embedding table."""
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig.from_pretrained(path))
    return sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()


def synthetic_pairs(count: int, tokens: int, tokenizer) -> list[PreferencePair]:
    """Pairs of about `tokens` tokens each: a long prompt, then two responses that differ."""
    sentences = [r for _, r in demo_conversations(count * 8, seed=3)]
    pairs, cursor = [], 0
    for _ in range(count):
        text = ""
        while len(tokenizer(text)["input_ids"]) < tokens // 2:
            text += sentences[cursor % len(sentences)] + " "
            cursor += 1
        prompt, response = text[: len(text) // 2], text[len(text) // 2 :]
        pairs.append(
            PreferencePair(
                prompt=prompt, chosen=response + " blue", rejected=response.replace("the", "a")
            )
        )
    return pairs


class StepClock(TrainerCallback):
    """Wall time at the end of every optimizer step of a plain TRL run."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs:
            self.tokens.append(float(logs["num_tokens"]))


def fresh_dir(path: Path) -> Path:
    """An empty run directory: the engine resumes from whatever an earlier run left in one."""
    shutil.rmtree(path, ignore_errors=True)
    return path


def fresh_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def steady_step_time(times: list[float]) -> float:
    """Median step time, leaving out the first step (allocation, autotuning, compilation)."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return statistics.median(gaps[1:] if len(gaps) > 2 else gaps)


def summarise(name, mode, impl, times, tokens_per_step, n_params, peak_tflops, extra=None):
    step_time = steady_step_time(times)
    tokens_per_s = tokens_per_step / step_time
    row = {
        "part": name,
        "mode": mode,
        "impl": impl,
        "step_time_s": round(step_time, 4),
        "tokens_per_step": round(tokens_per_step),
        "tokens_per_s": round(tokens_per_s, 1),
        "peak_memory_gb": peak_memory_gb(),
        "mfu_6n": 6 * n_params * tokens_per_s / (peak_tflops * 1e12),
    }
    row.update(extra or {})
    return row


def run_engine_pairwise(kind, model_path, mode, pairs, args, out_dir, n_params, overrides=None):
    from training.engine.dpo import train_dpo
    from training.engine.reward import train_reward_model

    fresh_memory()
    reports: list[tuple[float, dict]] = []
    common = dict(
        base_model=str(model_path),
        lora=LORA,
        max_steps=args.steps,
        max_length=args.seq_len,
        quantize=mode == "qlora",
        checkpoint_every=10_000,
        batch_size=args.tiny_batch if args.tiny else None,
        gradient_accumulation_steps=1 if args.tiny else None,
    )
    common.update(overrides or {})
    train = train_reward_model if kind == "reward" else train_dpo
    config = (RewardRunConfig if kind == "reward" else DPORunConfig)(**common, eval_fraction=0.0)
    run_dir = fresh_dir(out_dir / f"engine-{kind}-{mode}")
    started = _synced_now()
    result = train(
        config,
        pairs,
        run_dir,
        on_metrics=lambda m: reports.append((_synced_now(), m)),
    )
    # Loading, the memory probe, any reference precompute, every step and saving: the whole run.
    run_wall_s = _synced_now() - started
    totals = [m["num_tokens"] for _, m in reports if m.get("num_tokens") is not None]
    tokens_per_step = statistics.median([b - a for a, b in zip(totals, totals[1:], strict=False)])
    final = result.final_metrics
    plan = {
        "micro_batch_size": final["micro_batch_size"],
        "gradient_accumulation_steps": final["gradient_accumulation_steps"],
        "gradient_checkpointing": final["gradient_checkpointing"],
        "run_wall_s": round(run_wall_s, 2),
    }
    return summarise(
        kind,
        mode,
        "engine" + "".join(f"[{key}={value}]" for key, value in (overrides or {}).items()),
        [t for t, _ in reports],
        tokens_per_step,
        n_params,
        args.peak_tflops,
        plan,
    )


def run_trl_default(kind, model_path, mode, pairs, args, out_dir, n_params):
    """The plain TRL script: model by path, TRL's default arguments, same LoRA and data."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, BitsAndBytesConfig
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    fresh_memory()
    started = _synced_now()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    quantization = None
    if mode == "qlora":
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    common = dict(
        output_dir=str(out_dir / f"trl-{kind}-{mode}"),
        max_steps=args.steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        max_length=args.seq_len,
        model_init_kwargs={"dtype": dtype},
        bf16=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
    )
    if args.tiny:
        common["per_device_train_batch_size"] = args.tiny_batch
    texts = {
        "prompt": [p.prompt for p in pairs],
        "chosen": [p.chosen for p in pairs],
        "rejected": [p.rejected for p in pairs],
    }
    clock = StepClock()
    lora = dict(r=LORA.rank, lora_alpha=LORA.alpha, lora_dropout=0.0, target_modules="all-linear")
    if kind == "reward":
        trainer = RewardTrainer(
            model=str(model_path),
            args=RewardConfig(**common),
            train_dataset=Dataset.from_dict(texts),
            processing_class=tokenizer,
            peft_config=LoraConfig(task_type="SEQ_CLS", **lora),
            quantization_config=quantization,
            callbacks=[clock],
        )
    else:
        trainer = DPOTrainer(
            model=str(model_path),
            args=DPOConfig(**common),
            train_dataset=Dataset.from_dict(texts),
            processing_class=tokenizer,
            peft_config=LoraConfig(task_type="CAUSAL_LM", **lora),
            quantization_config=quantization,
            callbacks=[clock],
        )
    trainer.train()
    run_wall_s = _synced_now() - started
    tokens_per_step = statistics.median(
        [b - a for a, b in zip(clock.tokens, clock.tokens[1:], strict=False)]
    )
    plan = {
        "micro_batch_size": trainer.args.per_device_train_batch_size,
        "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "run_wall_s": round(run_wall_s, 2),
    }
    del trainer
    return summarise(
        kind, mode, "trl-default", clock.times, tokens_per_step, n_params, args.peak_tflops, plan
    )


def run_engine_ppo(model_path, mode, args, out_dir, n_params, sampler, overrides=None):
    from training.engine.ppo import train_ppo

    fresh_memory()
    reports: list[tuple[float, dict]] = []
    prompts_per_step = 8 if args.tiny else 64
    config = PPORunConfig(
        base_model=str(model_path),
        lora=LORA,
        quantize=mode == "qlora",
        total_steps=args.ppo_steps,
        prompts_per_step=prompts_per_step,
        ppo_epochs=1,
        num_minibatches=4 if not args.tiny else 1,
        generation=GenerationSettings(
            max_new_tokens=args.new_tokens,
            temperature=1.0,
        ),
        merged_sampler=sampler == "merged",
        checkpoint_every=10_000,
        max_length=args.seq_len,
        **(overrides or {}),
    )
    prompt = " ".join(r for _, r in demo_conversations(6, seed=5))
    train_ppo(
        config,
        [prompt] * prompts_per_step,
        fresh_dir(out_dir / f"engine-ppo-{mode}-{sampler}"),
        reward_fn=lambda texts: [len(t) / 1000 for t in texts],
        on_metrics=lambda m: reports.append((_synced_now(), m)),
    )
    # tokens_per_s in the PPO metrics counts the rollout's prompt and response tokens per step.
    step_times = [
        b - a for a, b in zip([t for t, _ in reports], [t for t, _ in reports][1:], strict=False)
    ]
    step_time = statistics.median(step_times) if step_times else float("nan")
    tokens_per_s = statistics.median(m["tokens_per_s"] for _, m in reports[1:] or reports)
    return {
        "part": "ppo",
        "mode": mode,
        "impl": f"engine-{sampler}-sampler"
        + "".join(f"[{key}={value}]" for key, value in (overrides or {}).items()),
        "step_time_s": round(step_time, 4),
        "tokens_per_s": round(tokens_per_s, 1),
        "peak_memory_gb": peak_memory_gb(),
        "rollout": f"{prompts_per_step} prompts x {args.new_tokens} new tokens, 1 PPO epoch",
        "mean_kl": statistics.mean(m["kl"] for _, m in reports),
        "rollout_s": statistics.median(m["rollout_s"] for _, m in reports[1:] or reports),
        "update_s": statistics.median(m["update_s"] for _, m in reports[1:] or reports),
    }


def run_generation(model_path, mode, args, n_params):
    """Rollout decoding at a fixed length: through the adapter, and through the merged sampler's copy."""
    from peft import get_peft_model

    from training.engine.generation import encode_prompts
    from training.engine.loading import build_lora_config, load_base_model, load_tokenizer
    from training.engine.sampler import MergedSampler

    fresh_memory()
    tokenizer = load_tokenizer(str(model_path))
    model = load_base_model(str(model_path), quantize=mode == "qlora", tokenizer=tokenizer)
    model = get_peft_model(model, build_lora_config(LORA), adapter_name="policy").eval()
    batch = 8 if args.tiny else 64
    prompt = " ".join(r for _, r in demo_conversations(4, seed=9))
    encoded = encode_prompts(tokenizer, [prompt] * batch).to(model.device)
    merged = MergedSampler(model, "policy").model
    # Plain `generate` through the adapter with its default dynamic cache is the baseline; the engine's
    # PPO samples from the merged copy, with a static cache that CUDA compiles into graphs.
    variants = [
        ("adapter-dynamic-cache", model, {"cache_implementation": None}),
        ("merged-dynamic-cache", merged, {"cache_implementation": None}),
    ]
    if torch.cuda.is_available():
        variants.append(
            ("merged-static-cache-compiled", merged, {"cache_implementation": "static"})
        )
    rows = []
    for name, sampling_model, kwargs in variants:
        timings = []
        # The first call pays for allocation and compilation; eager variants need one more, compiled two.
        for _ in range(3 if "compiled" in name else 2):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            sampling_model.generate(
                **encoded,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **kwargs,
            )
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
        steady = min(timings[1:])
        tokens_per_s = batch * args.new_tokens / steady
        rows.append(
            {
                "part": "generation",
                "mode": mode,
                "impl": name,
                "batch": batch,
                "new_tokens": args.new_tokens,
                "first_call_s": round(timings[0], 3),
                "steady_call_s": round(steady, 4),
                "tokens_per_s": round(tokens_per_s, 1),
                "peak_memory_gb": peak_memory_gb(),
                "mfu_2n": 2 * n_params * tokens_per_s / (args.peak_tflops * 1e12),
            }
        )
    del model, merged
    return rows


def parse_overrides(spec: str) -> dict:
    """'fused_kernels=false,batch_size=64' -> {'fused_kernels': False, 'batch_size': 64}."""
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def _synced_now() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model: a quick CPU smoke run")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per rollout")
    parser.add_argument("--modes", default="qlora,lora", help="comma list of qlora, lora")
    parser.add_argument("--parts", default="reward,dpo,ppo-adapter,ppo-merged,generation")
    parser.add_argument("--ppo-steps", type=int, default=None, help="PPO iterations per run")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--workdir", type=Path, default=None, help="where models and runs go")
    parser.add_argument(
        "--engine-variant",
        action="append",
        default=[],
        metavar="FIELD=VALUE[,FIELD=VALUE]",
        help="also run the engine's reward/DPO with these run-config fields (JSON values), "
        "e.g. fused_kernels=false or batch_size=64; repeatable",
    )
    args = parser.parse_args()
    args.steps = args.steps or (3 if args.tiny else 8)
    args.ppo_steps = args.ppo_steps or args.steps
    args.seq_len = args.seq_len or (64 if args.tiny else 512)
    args.new_tokens = args.new_tokens or (8 if args.tiny else 128)
    args.tiny_batch = 4
    suffix = "-tiny" if args.tiny else ""
    args.out = args.out or ROOT / "var" / "benchmarks" / f"engine_throughput{suffix}.json"

    modes = [m for m in args.modes.split(",") if m]
    if not torch.cuda.is_available():
        # Without CUDA there is no 4-bit path and no bf16 training: run the fp32 LoRA path only.
        modes = ["lora"]
    parts = set(args.parts.split(","))
    variants = [parse_overrides(spec) for spec in args.engine_variant]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="engine-bench-"))
    model_path = build_random_llama(workdir, args.tiny)
    n_params = parameter_count(model_path)
    from training.engine.loading import load_tokenizer

    pairs = synthetic_pairs(max(64, args.steps * 32), args.seq_len, load_tokenizer(str(model_path)))

    jobs = []
    for mode in modes:
        for kind in ("reward", "dpo"):
            if kind in parts:
                jobs.append((f"{kind} {mode} engine", run_engine_pairwise, kind, mode))
                jobs.append((f"{kind} {mode} trl", run_trl_default, kind, mode))
                for overrides in variants:
                    jobs.append(
                        (
                            f"{kind} {mode} engine {overrides}",
                            run_engine_pairwise,
                            kind,
                            mode,
                            overrides,
                        )
                    )
        for sampler in ("adapter", "merged"):
            if f"ppo-{sampler}" in parts:
                jobs.append((f"ppo {mode} {sampler}", run_engine_ppo, mode, sampler))
        if "generation" in parts:
            jobs.append((f"generation {mode}", run_generation, mode))

    report = {
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "model": str(model_path),
        "parameters_without_embedding": n_params,
        "steps": args.steps,
        "ppo_steps": args.ppo_steps,
        "seq_len": args.seq_len,
        "new_tokens": args.new_tokens,
        "peak_tflops": args.peak_tflops,
        "lora": {"rank": LORA.rank, "alpha": LORA.alpha, "target_modules": LORA.target_modules},
        "results": [],
        "failures": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for label, run, *spec in jobs:
        # One part failing (a kernel missing on this GPU, say) leaves the others' figures standing.
        try:
            if run is run_engine_pairwise or run is run_trl_default:
                rows = [
                    run(spec[0], model_path, spec[1], pairs, args, workdir, n_params, *spec[2:])
                ]
            elif run is run_engine_ppo:
                rows = [run(model_path, spec[0], args, workdir, n_params, *spec[1:])]
            else:
                rows = run(model_path, spec[0], args, n_params)
        except Exception:
            traceback.print_exc()
            report["failures"].append({"part": label, "error": traceback.format_exc(limit=3)})
            if run is run_engine_ppo and len(spec) == 2:
                # PPO has no unfused variant of its own: where the fused kernels fail, measure without.
                jobs.append((f"{label} unfused", run, *spec, {"fused_kernels": False}))
            continue
        report["results"].extend(rows)
        _print(rows)
        # Written after every part, so a run stopped at a time limit still leaves what it measured.
        args.out.write_text(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def _print(rows: list[dict]) -> None:
    for row in rows:
        memory = row.get("peak_memory_gb")
        mfu = row.get("mfu_6n", row.get("mfu_2n"))
        print(
            f"{row['part']:<10} {row['mode']:<6} {row['impl']:<22} "
            f"step {row.get('step_time_s', row.get('steady_call_s'))!s:>8}s  "
            f"{row['tokens_per_s']:>10.1f} tok/s  "
            f"mem {'-' if memory is None else f'{memory:.2f} GiB':>10}  "
            f"MFU {'-' if mfu is None else f'{100 * mfu:.2f}%'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
