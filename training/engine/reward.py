"""Reward models: train one on preference pairs, save it, load it back and score texts.

A reward model is the base with a one-output sequence-classification head and LoRA adapters (QLoRA on
CUDA). Training is TRL's RewardTrainer, whose loss is the Bradley-Terry one, -log sigmoid(r_c - r_r - m)
with an optional margin m (Ouyang et al. 2022, eq. 1; Touvron et al. 2023, eq. 2). The artifact is
an adapter directory (adapters + the trained score head + tokenizer) that `load_reward_model` reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PrinterCallback

from training.engine.batches import RewardCollator, right_pad
from training.engine.config import RewardRunConfig
from training.engine.examples import PreferencePair, split_holdout
from training.engine.generation import render_prompt
from training.engine.kernels import fuse_kernels
from training.engine.loading import (
    build_lora_config,
    load_base_model,
    load_tokenizer,
    prepare_for_training,
)
from training.engine.runs import (
    ADAPTER_DIRNAME,
    CancelCheck,
    MetricsCallback,
    MetricsRecorder,
    RunResult,
    gpu_memory_gb,
    seed_everything,
    write_json_atomically,
)
from training.engine.trl_runs import (
    EngineCallback,
    plan_batches,
    resume_point,
    run_trainer,
    trainer_arguments,
)

logger = logging.getLogger(__name__)

ARTIFACT_FILENAME = "engine_artifact.json"


def encode_for_reward(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> list[int]:
    """Token ids ending in EOS (the token whose hidden state a causal reward model reads), cut to
    `max_length` from the left: the two responses of a pair differ at the end, not at the start.
    A leading BOS/CLS is kept, since encoder models pool on it.
    """
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    if len(ids) > max_length:
        head = ids[:1] if ids[0] in tokenizer.all_special_ids else []
        ids = head + ids[len(ids) - (max_length - len(head)) :]
    return ids


def pair_texts(tokenizer: PreTrainedTokenizerBase, pair: PreferencePair) -> tuple[str, str]:
    prompt = render_prompt(tokenizer, pair.prompt)
    return prompt + pair.chosen, prompt + pair.rejected


@dataclass
class RewardModel:
    """A loaded reward model; `score` maps full texts (prompt + response) to scalar rewards."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    max_length: int = 512

    @torch.no_grad()
    def score(self, texts: Sequence[str], batch_size: int = 32) -> list[float]:
        was_training = self.model.training
        self.model.eval()
        scores: list[float] = []
        try:
            for start in range(0, len(texts), batch_size):
                encoded = [
                    encode_for_reward(self.tokenizer, text, self.max_length)
                    for text in texts[start : start + batch_size]
                ]
                input_ids, attention_mask = right_pad(encoded, self.tokenizer.pad_token_id)
                device = self.model.device
                logits = self.model(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
                ).logits
                scores.extend(logits[:, 0].float().cpu().tolist())
        finally:
            self.model.train(was_training)
        return scores

    def pairwise_accuracy(self, pairs: Sequence[PreferencePair], batch_size: int = 32) -> float:
        """Share of pairs where the chosen response scores strictly higher than the rejected one."""
        if not pairs:
            raise ValueError("pairwise_accuracy needs at least one pair.")
        texts = [pair_texts(self.tokenizer, pair) for pair in pairs]
        chosen = self.score([c for c, _ in texts], batch_size)
        rejected = self.score([r for _, r in texts], batch_size)
        return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)


def load_reward_model(path: str | Path, *, quantize: bool | None = None) -> RewardModel:
    """Load a reward model saved by `train_reward_model` (its adapter directory)."""
    path = Path(path)
    artifact = json.loads((path / ARTIFACT_FILENAME).read_text())
    tokenizer = load_tokenizer(str(path))
    base = load_base_model(
        artifact["base_model"], kind="reward", quantize=quantize, tokenizer=tokenizer
    )
    model = PeftModel.from_pretrained(base, str(path))
    model.eval()
    return RewardModel(model=model, tokenizer=tokenizer, max_length=artifact["max_length"])


def train_reward_model(
    config: RewardRunConfig,
    pairs: Sequence[PreferencePair],
    output_dir: str | Path,
    *,
    eval_pairs: Sequence[PreferencePair] | None = None,
    on_metrics: MetricsCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> RunResult:
    """Train a reward model on `pairs`; report pairwise accuracy on `eval_pairs` (or a held-out split).

    Reruns with the same `output_dir` resume from its newest checkpoint.
    """
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    if eval_pairs is None:
        train_pairs, held_out = split_holdout(pairs, config.eval_fraction, config.seed)
    else:
        train_pairs, held_out = list(pairs), list(eval_pairs)
    if not train_pairs:
        raise ValueError("A reward model needs at least one training pair.")

    tokenizer = load_tokenizer(config.base_model)
    model = load_base_model(
        config.base_model, kind="reward", quantize=config.quantize, tokenizer=tokenizer
    )
    fuse_kernels(model, config.fused_kernels)
    plan = plan_batches(config, model, sequences_per_example=2)
    # Trainer switches gradient checkpointing on itself, from the arguments below.
    model = prepare_for_training(model, gradient_checkpointing=False)

    recorder = MetricsRecorder(output_dir, on_metrics)
    checkpoint, resumed_step = resume_point(output_dir, recorder)
    callback = EngineCallback(recorder, should_cancel)
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(
            **trainer_arguments(config, output_dir, plan, config.epochs, config.max_steps),
            center_rewards_coefficient=config.center_rewards_coefficient,
        ),
        train_dataset=Dataset.from_dict(_encode_pairs(tokenizer, train_pairs, config.max_length)),
        processing_class=tokenizer,
        peft_config=build_lora_config(config.lora, kind="reward"),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    # TRL's collator, with the padding it chose, done faster (batches.py).
    trainer.data_collator = RewardCollator(
        trainer.data_collator.pad_token_id, trainer.data_collator.pad_to_multiple_of
    )
    run_trainer(trainer, checkpoint, config.fused_kernels)

    adapter_dir = output_dir / ADAPTER_DIRNAME
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(adapter_dir)
    write_json_atomically(
        adapter_dir / ARTIFACT_FILENAME,
        {"kind": "reward", "base_model": config.base_model, "max_length": config.max_length},
    )

    reward_model = RewardModel(trainer.model, tokenizer, config.max_length)
    last = recorder.history[-1] if recorder.history else {}
    final = recorder.finish(
        {
            "step": trainer.state.global_step,
            "loss": callback.summary.get("train_loss", last.get("loss")),
            "train_accuracy": last.get("accuracy"),
            "eval_accuracy": reward_model.pairwise_accuracy(held_out) if held_out else None,
            "eval_pairs": len(held_out),
            "train_runtime_s": callback.summary.get("train_runtime"),
            "micro_batch_size": plan.micro_batch_size,
            "gradient_accumulation_steps": plan.gradient_accumulation_steps,
            "gradient_checkpointing": plan.gradient_checkpointing,
            "gpu_memory_gb": gpu_memory_gb(),
        }
    )
    logger.info(
        "Reward model saved to %s; held-out accuracy %s.", adapter_dir, final["eval_accuracy"]
    )
    return RunResult(
        output_dir=output_dir,
        adapter_dir=adapter_dir,
        metrics_path=recorder.path,
        final_metrics=final,
        steps=trainer.state.global_step,
        resumed_from_step=resumed_step,
        history=list(recorder.history),
    )


def _encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], max_length: int
) -> dict[str, list]:
    # Tokenized here rather than by TRL, so that training and `RewardModel.score` encode alike
    # (EOS appended, left truncation); TRL skips its own tokenization for these columns.
    columns: dict[str, list] = {"chosen_ids": [], "rejected_ids": []}
    for pair in pairs:
        chosen, rejected = pair_texts(tokenizer, pair)
        columns["chosen_ids"].append(encode_for_reward(tokenizer, chosen, max_length))
        columns["rejected_ids"].append(encode_for_reward(tokenizer, rejected, max_length))
    if any(pair.margin is not None for pair in pairs):
        columns["margin"] = [pair.margin or 0.0 for pair in pairs]
    return columns
