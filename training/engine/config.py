"""Settings for every engine run, as plain dataclasses.

This module imports nothing heavy (no torch), so the Django side can build, validate and store these
configs without loading the ML stack. Names end in ``Settings`` or ``RunConfig`` so they never clash
with ``trl.DPOConfig``, ``trl.RewardConfig`` or ``transformers.GenerationConfig``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

KLEstimator = Literal["k1", "k3"]


@dataclass(kw_only=True)
class LoraSettings:
    """LoRA adapter shape (Hu et al. 2021); on CUDA the base is 4-bit, which makes it QLoRA."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear" is PEFT's shorthand for every linear layer except the output head (QLoRA's choice,
    # Dettmers et al. 2023, section 4: adapters on all layers are needed to match full fine-tuning).
    target_modules: str | list[str] = "all-linear"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {self.rank}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}.")


@dataclass(kw_only=True)
class GenerationSettings:
    """How to sample responses from a policy."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    # 0 turns top-k filtering off.
    top_k: int = 0
    # Samples drawn for each prompt.
    num_samples: int = 1
    # Prompts per `generate` call; None means all prompts in one call.
    batch_size: int | None = None
    # "static" pre-allocates the KV cache so decoding can be compiled; None is transformers' dynamic cache.
    cache_implementation: str | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(
                "temperature must be positive; use a small value for near-greedy sampling."
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_new_tokens < 1 or self.num_samples < 1:
            raise ValueError("max_new_tokens and num_samples must be at least 1.")


@dataclass(kw_only=True)
class RunSettings:
    """Fields shared by every training run."""

    # A hub id or a local directory readable by `from_pretrained`.
    base_model: str
    lora: LoraSettings = field(default_factory=LoraSettings)
    learning_rate: float = 1e-4
    seed: int = 0
    # Examples per optimizer step. None: `choose_batch_plan` picks the micro-batch, accumulation and
    # gradient checkpointing from free GPU memory (on CPU: 8 and no checkpointing).
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    gradient_checkpointing: bool | None = None
    # Longest tokenized sequence (prompt + response).
    max_length: int = 512
    # None: 4-bit NF4 (QLoRA) when CUDA and bitsandbytes are present, plain LoRA otherwise.
    quantize: bool | None = None
    # Optimizer steps between checkpoints; a killed run resumes from the newest one in its output dir.
    checkpoint_every: int = 50
    # Optimizer steps between metric reports.
    log_every: int = 1
    # Fused kernels (training/engine/kernels.py): Liger's RMSNorm and SwiGLU, and LoRA updates
    # summed inside their products. None: LoRA fused everywhere, Liger on CUDA where liger-kernel
    # is installed and the model is Llama-style; True: Liger required too; False: all off.
    fused_kernels: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class RewardRunConfig(RunSettings):
    """Bradley-Terry reward model on chosen/rejected pairs (Ouyang et al. 2022, eq. 1)."""

    epochs: float = 1.0
    # Stops after this many optimizer steps when set (overrides epochs).
    max_steps: int | None = None
    # Share of pairs held out for the pairwise accuracy when no explicit eval pairs are given.
    eval_fraction: float = 0.1
    # Penalty on the squared mean reward, keeping scores centred (Eisenstein et al. 2023).
    center_rewards_coefficient: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}.")


@dataclass(kw_only=True)
class DPORunConfig(RunSettings):
    """Direct Preference Optimization (Rafailov et al. 2023) through TRL's DPOTrainer."""

    learning_rate: float = 5e-5
    beta: float = 0.1
    # Any of TRL's DPO loss types: "sigmoid" (the paper's), "ipo", "hinge", "robust", ...
    loss_type: str | list[str] = "sigmoid"
    epochs: float = 1.0
    max_steps: int | None = None
    eval_fraction: float = 0.0
    # Score every pair under the reference once, before training, in large no-grad batches, instead of
    # a reference forward pass inside every training step.
    precompute_reference: bool = True


@dataclass(kw_only=True)
class PPORunConfig(RunSettings):
    """PPO with a KL penalty against the frozen reference (Ziegler et al. 2019; Ouyang et al. 2022).

    Defaults follow Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO".
    Here `batch_size` is the micro-batch of every forward/backward pass (None: planned from free GPU
    memory); each minibatch of rollout_size / num_minibatches responses accumulates over micro-batches.
    """

    learning_rate: float = 1e-5
    generation: GenerationSettings = field(
        default_factory=lambda: GenerationSettings(max_new_tokens=53, temperature=0.7)
    )
    # PPO iterations: each is one rollout batch followed by `ppo_epochs` passes over it.
    total_steps: int = 100
    # Prompts per rollout; the rollout holds prompts_per_step * generation.num_samples responses.
    prompts_per_step: int = 16
    ppo_epochs: int = 4
    # Minibatches per PPO epoch.
    num_minibatches: int = 1
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    value_loss_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    kl_estimator: KLEstimator = "k1"
    # When set, the KL coefficient adapts towards this per-sequence KL (Ziegler et al. 2019, section 2.2).
    target_kl: float | None = None
    kl_horizon: int = 10_000
    # Normalise per-token rewards to unit variance before GAE (Huang et al. 2024, detail on reward whitening).
    whiten_rewards: bool = False
    # Shift and scale the reward so that the starting policy's responses score mean 0, std 1, measured
    # once before training on this many responses (Ziegler et al. 2019; Huang et al. 2024, "reward
    # normalization"). kl_coef, value_clip_range and missing_eos_penalty are then in units of that
    # std, whatever the reward model's scale; 0 leaves the reward as it is.
    reward_normalization_samples: int = 0
    # Subtracted from the score of a response that never emitted EOS; None leaves such scores alone.
    missing_eos_penalty: float | None = 1.0
    max_grad_norm: float = 1.0
    # Responses scored per reward-model forward pass.
    reward_batch_size: int = 32
    # Sample rollouts from a merged copy of the policy (see sampler.py): several times faster decoding
    # for one more copy of the weights in bf16, taken only when it needs at most half the free GPU
    # memory. False samples through the adapter itself.
    merged_sampler: bool = True

    def __post_init__(self) -> None:
        if self.reward_normalization_samples < 0 or self.reward_normalization_samples == 1:
            raise ValueError("reward_normalization_samples must be 0 (off) or at least 2.")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}.")
        rollout_size = self.prompts_per_step * self.generation.num_samples
        if rollout_size % self.num_minibatches:
            raise ValueError(
                f"The rollout of {rollout_size} responses does not split into "
                f"{self.num_minibatches} equal minibatches."
            )
