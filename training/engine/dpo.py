"""Direct Preference Optimization on (Q)LoRA through TRL's DPOTrainer.

The policy is the base plus a fresh LoRA adapter; the reference is the same base with the adapter
disabled (TRL does this when given a `peft_config` and no `ref_model`), so only one copy of the weights
is ever in memory. Loss: -log sigmoid(beta * (log-ratio chosen - log-ratio rejected)) for the default
"sigmoid" type (Rafailov et al. 2023, eq. 7); any of TRL's loss types can be chosen instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from transformers import PrinterCallback

from training.engine.batches import DPOCollator
from training.engine.config import DPORunConfig
from training.engine.examples import PreferencePair, split_holdout
from training.engine.generation import render_prompt, text_for_tokenizer
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
)
from training.engine.trl_runs import (
    EngineCallback,
    plan_batches,
    resume_point,
    run_trainer,
    trainer_arguments,
)

logger = logging.getLogger(__name__)


def train_dpo(
    config: DPORunConfig,
    pairs: Sequence[PreferencePair],
    output_dir: str | Path,
    *,
    eval_pairs: Sequence[PreferencePair] | None = None,
    on_metrics: MetricsCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> RunResult:
    """Train a LoRA policy with DPO on `pairs`; the adapter lands in `<output_dir>/adapter`.

    Margins on the pairs are ignored (DPO has no margin term). Reruns with the same `output_dir`
    resume from its newest checkpoint.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    if eval_pairs is None:
        train_pairs, held_out = split_holdout(pairs, config.eval_fraction, config.seed)
    else:
        train_pairs, held_out = list(pairs), list(eval_pairs)
    if not train_pairs:
        raise ValueError("DPO needs at least one training pair.")

    tokenizer = load_tokenizer(config.base_model)
    model = load_base_model(config.base_model, quantize=config.quantize, tokenizer=tokenizer)
    fuse_kernels(model, config.fused_kernels)
    plan = plan_batches(config, model, sequences_per_example=2)
    model = prepare_for_training(model, gradient_checkpointing=False)

    recorder = MetricsRecorder(output_dir, on_metrics)
    checkpoint, resumed_step = resume_point(output_dir, recorder)
    callback = EngineCallback(recorder, should_cancel)
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=DPOConfig(
            **trainer_arguments(config, output_dir, plan, config.epochs, config.max_steps),
            beta=config.beta,
            loss_type=config.loss_type,
            precompute_ref_log_probs=config.precompute_reference,
            # No activations are kept for a backward pass, so a no-grad batch can be much larger.
            precompute_ref_batch_size=4 * plan.micro_batch_size,
        ),
        train_dataset=Dataset.from_dict(_dpo_columns(tokenizer, train_pairs)),
        eval_dataset=Dataset.from_dict(_dpo_columns(tokenizer, held_out)) if held_out else None,
        processing_class=tokenizer,
        peft_config=build_lora_config(config.lora),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    # TRL's collator, with the settings it chose, done faster (batches.py).
    trl_collator = trainer.data_collator
    trainer.data_collator = DPOCollator(
        trl_collator.pad_token_id,
        trl_collator.max_length,
        trl_collator.truncation_mode,
        trl_collator.pad_to_multiple_of,
    )
    run_trainer(trainer, checkpoint, config.fused_kernels)

    adapter_dir = output_dir / ADAPTER_DIRNAME
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(adapter_dir)

    evaluation = trainer.evaluate() if held_out else {}
    last = recorder.history[-1] if recorder.history else {}
    final = recorder.finish(
        {
            "step": trainer.state.global_step,
            "loss": callback.summary.get("train_loss", last.get("loss")),
            "margin": last.get("margin"),
            "accuracy": last.get("accuracy"),
            "eval_margin": evaluation.get("eval_rewards/margins"),
            "eval_accuracy": evaluation.get("eval_rewards/accuracies"),
            "train_runtime_s": callback.summary.get("train_runtime"),
            "micro_batch_size": plan.micro_batch_size,
            "gradient_accumulation_steps": plan.gradient_accumulation_steps,
            "gradient_checkpointing": plan.gradient_checkpointing,
            "gpu_memory_gb": gpu_memory_gb(),
        }
    )
    logger.info("DPO adapter saved to %s.", adapter_dir)
    return RunResult(
        output_dir=output_dir,
        adapter_dir=adapter_dir,
        metrics_path=recorder.path,
        final_metrics=final,
        steps=trainer.state.global_step,
        resumed_from_step=resumed_step,
        history=list(recorder.history),
    )


def _dpo_columns(tokenizer, pairs: Sequence[PreferencePair]) -> dict[str, list[str]]:
    # Prompts are rendered here, exactly as generation renders them, so the policy is trained on the
    # context it sees when sampling; TRL adds BOS and appends EOS to both responses.
    return {
        "prompt": [
            text_for_tokenizer(tokenizer, render_prompt(tokenizer, pair.prompt)) for pair in pairs
        ],
        "chosen": [pair.chosen for pair in pairs],
        "rejected": [pair.rejected for pair in pairs],
    }
