"""Run TRL's trainers the engine's way: batch plan, checkpoints and resume, metrics callback, cancel.

The reward-model and DPO runs hand their training loop to TRL (RewardTrainer, DPOTrainer, both on
transformers' Trainer); this module adapts that loop to the engine's contract from `runs.py`.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft.helpers import disable_input_dtype_casting
from transformers import (
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)

from training.engine.batch_plan import BatchPlan, choose_batch_plan
from training.engine.config import RunSettings
from training.engine.kernels import fuse_lora
from training.engine.runs import (
    CHECKPOINTS_DIRNAME,
    CancelCheck,
    MetricsRecorder,
    check_cancelled,
    checkpoint_step,
    gpu_memory_gb,
    latest_checkpoint,
)

logger = logging.getLogger(__name__)

# TRL's log keys -> the engine's metric names (see training/engine/__init__.py).
_METRIC_NAMES = {
    "mean_reward": "reward_mean",
    "rewards/chosen": "chosen_reward",
    "rewards/rejected": "rejected_reward",
    "rewards/accuracies": "accuracy",
    "rewards/margins": "margin",
    "logps/chosen": "chosen_logp",
    "logps/rejected": "rejected_logp",
}
# Summary keys transformers logs once at the end of `train()`.
_SUMMARY_KEYS = {
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
}


def plan_batches(
    config: RunSettings, model: PreTrainedModel, sequences_per_example: int
) -> BatchPlan:
    """The config's explicit batch settings, else a plan probed from free GPU memory."""
    if config.batch_size is not None and config.gradient_accumulation_steps is not None:
        return BatchPlan(
            micro_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            gradient_checkpointing=bool(config.gradient_checkpointing),
            predicted_peak_gb=None,
            reason="set in the run config",
        )
    return choose_batch_plan(
        model,
        seq_len=config.max_length,
        target_batch_size=config.batch_size,
        gradient_checkpointing=config.gradient_checkpointing,
        sequences_per_example=sequences_per_example,
    )


def trainer_arguments(
    config: RunSettings, output_dir: Path, plan: BatchPlan, epochs: float, max_steps: int | None
) -> dict[str, Any]:
    """Keyword arguments shared by the TRL configs (both subclass transformers' TrainingArguments)."""
    on_cuda = torch.cuda.is_available()
    return {
        "output_dir": str(output_dir / CHECKPOINTS_DIRNAME),
        "per_device_train_batch_size": plan.micro_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "learning_rate": config.learning_rate,
        "num_train_epochs": epochs,
        "max_steps": max_steps if max_steps is not None else -1,
        "max_length": config.max_length,
        "seed": config.seed,
        "logging_steps": config.log_every,
        "save_strategy": "steps",
        "save_steps": config.checkpoint_every,
        # Two, so that a checkpoint being written while the run is killed still leaves one whole.
        "save_total_limit": 2,
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        # bf16 autocast only on CUDA: on the CPU it is slow and loses precision for nothing.
        "bf16": on_cuda,
        "fp16": False,
        "use_cpu": not on_cuda,
        "dataloader_num_workers": 0,
    }


class EngineCallback(TrainerCallback):
    """Forwards Trainer logs as engine metrics and stops the run when the cancel check says so."""

    def __init__(self, recorder: MetricsRecorder, should_cancel: CancelCheck | None):
        self.recorder = recorder
        self.should_cancel = should_cancel
        self.summary: dict[str, float] = {}
        self._last_tokens: float | None = None
        self._last_time: float | None = None

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kwargs):
        check_cancelled(self.should_cancel, state.global_step)

    def on_save(self, args, state: TrainerState, control: TrainerControl, **kwargs):
        self.recorder.flush()

    def on_log(self, args, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        logs = dict(logs or {})
        if _SUMMARY_KEYS & logs.keys():
            self.summary.update({k: v for k, v in logs.items() if k in _SUMMARY_KEYS})
            return
        # total_steps lets a caller show progress when the run is sized in epochs.
        metrics: dict[str, Any] = {"step": state.global_step, "total_steps": state.max_steps}
        for key, value in logs.items():
            metrics[_METRIC_NAMES.get(key, key.replace("/", "_"))] = value
        metrics["tokens_per_s"] = self._tokens_per_second(logs.get("num_tokens"))
        metrics["gpu_memory_gb"] = gpu_memory_gb()
        self.recorder.report(metrics)

    def _tokens_per_second(self, total_tokens: float | None) -> float | None:
        now = time.perf_counter()
        rate = None
        if total_tokens is not None and self._last_tokens is not None:
            rate = (total_tokens - self._last_tokens) / max(now - self._last_time, 1e-9)
        if total_tokens is not None:
            self._last_tokens, self._last_time = total_tokens, now
        return rate


@contextmanager
def lora_training(model: torch.nn.Module, *, fused: bool | None, bf16: bool) -> Iterator[None]:
    """Train `model`'s LoRA layers the engine's way: each update summed inside its matrix product
    unless `fused` is False (kernels.fuse_lora), and, in bf16, without PEFT's fp32 round trip.

    PEFT casts each adapted layer's input to the adapter weights' dtype (fp32) before the LoRA product,
    and under bf16 autocast that product runs in bf16 all the same: the input is copied to fp32 and
    straight back, changing no value. In a bf16-LoRA reward step on an H100 those copies took 57 of
    296 ms of GPU time (benchmarks/profile_reward_step.py). PEFT's 4-bit layers already skip the cast
    under autocast; this does the same for plain linear layers while training in bf16.
    """
    fuse_lora(model, fused)
    with disable_input_dtype_casting(model, active=bf16):
        yield


@contextmanager
def one_module_walk(model: torch.nn.Module) -> Iterator[None]:
    """Inside, `model.train()` in the mode its last call set, `model.parameters()` and
    `model.num_parameters()` do not walk the module tree again.

    transformers' Trainer calls all three at every step: train() in training_step, parameters() for
    zero_grad and gradient clipping, num_parameters for its FLOPs count. With LoRA on every linear layer
    a ~1B Llama has about 1,300 modules, and those walks took about 20 ms of CPU a step, part of it
    between one step's last synchronisation and the next step's first kernel, with the GPU idle
    (benchmarks/profile_trainer_step.py). A run adds and removes no module or parameter, so one walk
    serves it; a change of mode (eval() and back) still reaches every module. Parameters are read from
    their modules at each call, so one replaced by loading a checkpoint is the one seen.
    """
    owners, seen = [], set()
    for module in model.modules():
        for name, parameter in module._parameters.items():
            if parameter is not None and id(parameter) not in seen:
                seen.add(id(parameter))
                owners.append((module, name))
    counts: dict[tuple, int] = {}
    count_parameters = getattr(model, "num_parameters", None)

    walked_to: list[bool] = []  # the mode of the last walk, set through train()

    def train(self, mode: bool = True):
        if walked_to != [mode]:
            type(self).train(self, mode)
            walked_to[:] = [mode]
        return self

    def cached_parameters(self, recurse: bool = True):
        if not recurse:
            return type(self).parameters(self, recurse)
        return (module._parameters[name] for module, name in owners)

    def num_parameters(*args, **kwargs) -> int:
        key = (args, tuple(sorted(kwargs.items())))
        if key not in counts:
            counts[key] = count_parameters(*args, **kwargs)
        return counts[key]

    shortcuts = {
        "train": types.MethodType(train, model),
        "parameters": types.MethodType(cached_parameters, model),
    }
    if count_parameters is not None:
        shortcuts["num_parameters"] = num_parameters
    for name, shortcut in shortcuts.items():
        setattr(model, name, shortcut)
    try:
        yield
    finally:
        for name in shortcuts:
            delattr(model, name)


def run_trainer(trainer: Trainer, checkpoint: Path | None, fused: bool | None = None) -> None:
    """`trainer.train()`, resuming from `checkpoint`, inside lora_training and one_module_walk."""
    with (
        lora_training(trainer.model, fused=fused, bf16=trainer.args.bf16),
        one_module_walk(trainer.model),
    ):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)


def resume_point(output_dir: Path, recorder: MetricsRecorder) -> tuple[Path | None, int | None]:
    """The newest checkpoint to resume from (and its step), trimming metrics.json to match."""
    checkpoint = latest_checkpoint(output_dir / CHECKPOINTS_DIRNAME)
    if checkpoint is None:
        return None, None
    step = checkpoint_step(checkpoint)
    recorder.resume_at(step)
    logger.info("Resuming from %s (step %d).", checkpoint, step)
    return checkpoint, step
