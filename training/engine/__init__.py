"""Arbiter's training engine: reward models, DPO and PPO on (Q)LoRA. Plain python, never Django.

Importing this package is cheap: the config dataclasses and examples load at once, and the
torch-backed functions load on first use, so a web process can build configs without torch.

Runs (each takes a config, examples and an output directory, and returns a `RunResult`)::

    train_reward_model(config: RewardRunConfig, pairs: Sequence[PreferencePair], output_dir,
                       *, eval_pairs=None, on_metrics=None, should_cancel=None) -> RunResult
    train_dpo(config: DPORunConfig, pairs: Sequence[PreferencePair], output_dir,
              *, eval_pairs=None, on_metrics=None, should_cancel=None) -> RunResult
    train_ppo(config: PPORunConfig, prompts: Sequence[Prompt], output_dir,
              *, reward_model_path: str | Path | None = None,
              reward_fn: Callable[[list[str]], Sequence[float]] | None = None,
              on_metrics=None, should_cancel=None) -> RunResult
        (exactly one of reward_model_path, reward_fn; reward_fn maps prompt+response texts to scores)

    - `on_metrics(dict)` is called at every report (every `log_every` optimizer steps).
    - `should_cancel()` is polled between steps; when it returns True the run raises `RunCancelled`
      (checkpoints already written stay, so a later call with the same output dir resumes).
    - A rerun with the same `output_dir` resumes from the newest checkpoint in
      `<output_dir>/checkpoints/` (written every `checkpoint_every` steps).
    - Artifacts: `<output_dir>/adapter/` (PEFT adapter + tokenizer; `PeftModel.from_pretrained(base,
      path)` loads it), `<output_dir>/metrics.json` ({"history": [...], "final": {...}}; written
      every few seconds, at each checkpoint and at the end).

Using the artifacts::

    load_reward_model(path, *, quantize=None) -> RewardModel   # RewardModel.score(texts) -> list[float]
    load_tokenizer(name_or_path); load_base_model(name_or_path, kind="causal_lm"|"reward", quantize=None)
    generate(model, tokenizer, prompts, GenerationSettings) -> Generations (texts, token_counts, ...)
    choose_batch_plan(model, *, seq_len, target_batch_size=None, ...) -> BatchPlan
    training.engine.policy: load_policy(base_model, adapter_path=None) -> Policy, sample(policy,
        prompts, settings, merged=None) -> Generations, sequence_logprobs(model, generations) -> Tensor,
        kl_to_parent(policy, generations, parent_adapter_path=None) -> float,
        merge_adapter(base_model, adapter_path, output_dir) -> Path
    build_tiny_model(path, corpus=None, seed=0, pretrain_steps=200) -> Path   # offline demo base
    training.engine.sampler: MergedSampler(peft_model, adapter) -> .sync(), .generate(tokenizer,
        prompts, settings): a merged bf16 copy for fast sampling (PPO rollouts; `sample` on CUDA)

Examples: `PreferencePair(chosen, rejected, prompt="", margin=None)`; a `Prompt` is a string or a chat,
a list of {"role", "content"} dicts rendered with the tokenizer's chat template.

Metric names (keys of the dicts given to `on_metrics`; None where not measured, e.g. GPU memory on CPU):
    all runs:  step, loss, learning_rate, tokens_per_s, gpu_memory_gb
    reward:    accuracy, margin, reward_mean, grad_norm; final: eval_accuracy (held-out pairwise)
    dpo:       accuracy, margin, chosen_reward, rejected_reward, chosen_logp, rejected_logp
    ppo:       reward_mean, reward_std, penalized_reward_mean, kl (per sequence), kl_coef,
               non_score_reward, policy_loss, value_loss, clip_fraction, value_clip_fraction,
               approx_kl, entropy, response_length, eos_fraction, value_mean,
               rollout_s (sampling, scoring, reference and value passes), update_s (the PPO epochs)
               (tokens_per_s: prompt + response tokens of the rollout per second of the whole step)

Configs (see config.py for every field and its default): LoraSettings, GenerationSettings, and the
RunSettings shared by RewardRunConfig, DPORunConfig and PPORunConfig. On CUDA the base loads in 4-bit
NF4 (QLoRA) unless `quantize=False`; on the CPU it is fp32 with plain LoRA.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from training.engine.config import (
    DPORunConfig,
    GenerationSettings,
    LoraSettings,
    PPORunConfig,
    RewardRunConfig,
    RunSettings,
)
from training.engine.examples import ChatMessage, PreferencePair, Prompt
from training.engine.runs import RunCancelled, RunResult

_LAZY = {
    "train_reward_model": "training.engine.reward",
    "load_reward_model": "training.engine.reward",
    "RewardModel": "training.engine.reward",
    "train_dpo": "training.engine.dpo",
    "train_ppo": "training.engine.ppo",
    "generate": "training.engine.generation",
    "Generations": "training.engine.generation",
    "render_prompt": "training.engine.generation",
    "load_tokenizer": "training.engine.loading",
    "load_base_model": "training.engine.loading",
    "choose_batch_plan": "training.engine.batch_plan",
    "BatchPlan": "training.engine.batch_plan",
    "build_tiny_model": "training.engine.tiny",
    "demo_prompts": "training.engine.tiny",
}

__all__ = [
    "BatchPlan",
    "ChatMessage",
    "DPORunConfig",
    "GenerationSettings",
    "Generations",
    "LoraSettings",
    "PPORunConfig",
    "PreferencePair",
    "Prompt",
    "RewardModel",
    "RewardRunConfig",
    "RunCancelled",
    "RunResult",
    "RunSettings",
    "build_tiny_model",
    "choose_batch_plan",
    "demo_prompts",
    "generate",
    "load_base_model",
    "load_reward_model",
    "load_tokenizer",
    "render_prompt",
    "train_dpo",
    "train_ppo",
    "train_reward_model",
]

if TYPE_CHECKING:
    from training.engine.batch_plan import BatchPlan, choose_batch_plan
    from training.engine.dpo import train_dpo
    from training.engine.generation import Generations, generate, render_prompt
    from training.engine.loading import load_base_model, load_tokenizer
    from training.engine.ppo import train_ppo
    from training.engine.reward import RewardModel, load_reward_model, train_reward_model
    from training.engine.tiny import build_tiny_model, demo_prompts


def __getattr__(name: str) -> Any:
    # PEP 562: torch and transformers load only when one of these is first used.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'training.engine' has no attribute {name!r}")
