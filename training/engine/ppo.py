"""PPO with a KL penalty to the frozen reference, on one (Q)LoRA base (InstructGPT-style RLHF).

One base model in memory plays three parts:

* policy     - the base with the LoRA adapter "policy" (the artifact this run produces);
* reference  - the same base with every adapter disabled, i.e. the model we started from;
* critic     - the base with its own LoRA adapter "critic" plus a linear value head on its last hidden
               state. A separate critic, not a head on the policy's trunk, keeps the value loss out of
               the policy's gradients (Huang et al. 2024 train separate policy and value networks).

Each step (Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO"): sample responses from
the policy; score prompt + response with the reward model or a python reward function; shift and scale
the score by the starting policy's mean and std when `reward_normalization_samples` is set; subtract
the missing-EOS penalty; compute per-token logprobs of the policy (logits divided by the sampling
temperature), of the reference and the critic's values; shape per-token rewards with the KL penalty;
GAE; whiten advantages; then `ppo_epochs` passes over minibatches with clipped policy and value losses.
The KL coefficient is fixed, or adaptive when `target_kl` is set (Ziegler et al. 2019).
Dropout is switched off throughout so that logprobs at rollout and at update time agree.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import PreTrainedTokenizerBase

from training.engine import ppo_math
from training.engine.batch_plan import BatchPlan, choose_batch_plan
from training.engine.config import GenerationSettings, PPORunConfig
from training.engine.examples import Prompt
from training.engine.generation import Generations, generate
from training.engine.kernels import fuse_kernels, fuse_lora
from training.engine.loading import (
    build_lora_config,
    load_base_model,
    load_tokenizer,
    prepare_for_training,
)
from training.engine.policy import position_ids, token_logprobs
from training.engine.runs import (
    ADAPTER_DIRNAME,
    CHECKPOINTS_DIRNAME,
    CancelCheck,
    MetricsCallback,
    MetricsRecorder,
    RunResult,
    check_cancelled,
    checkpoint_step,
    gpu_memory_gb,
    latest_checkpoint,
    seed_everything,
)
from training.engine.sampler import MergedSampler, copy_bytes, merged_copy_fits

logger = logging.getLogger(__name__)

# Full texts (rendered prompt + response) in, one score per text out.
RewardFunction = Callable[[list[str]], Sequence[float]]

KLController = ppo_math.FixedKLController | ppo_math.AdaptiveKLController

POLICY, CRITIC = "policy", "critic"
_CHECKPOINT_FILENAME = "ppo_state.pt"
_KEEP_CHECKPOINTS = 2


@dataclass
class Rollout:
    """One PPO batch: sampled tokens plus everything computed from them before the update."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    # Filled in once the rollout has been scored and evaluated.
    logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    @property
    def query_length(self) -> int:
        return self.input_ids.shape[1] - self.response_ids.shape[1]

    def rows(self, index: torch.Tensor) -> Rollout:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Rollout(**{k: v[index] if v is not None else None for k, v in fields.items()})


class PolicyAndCritic:
    """The shared base with its "policy" and "critic" adapters, the value head, and the three forwards."""

    def __init__(
        self,
        model: PeftModel,
        value_head: torch.nn.Linear,
        temperature: float,
        sampler: MergedSampler | None = None,
    ):
        self.model = model
        self.value_head = value_head
        self.temperature = temperature
        self.sampler = sampler
        causal_lm = model.get_base_model()
        # The decoder stack without the LM head: the critic needs hidden states, not vocabulary logits.
        self.backbone = getattr(causal_lm, causal_lm.base_model_prefix)

    def parameters(self, adapter: str) -> list[torch.nn.Parameter]:
        marker = f".{adapter}."
        params = [
            p for name, p in self.model.named_parameters() if marker in name and "lora_" in name
        ]
        if adapter == CRITIC:
            params += list(self.value_head.parameters())
        return params

    def sample(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
    ) -> Generations:
        """Responses from the current policy, through the merged copy when there is one."""
        if self.sampler is None:
            self.model.set_adapter(POLICY)
            return generate(self.model, tokenizer, prompts, settings)
        self.sampler.sync()
        return self.sampler.generate(tokenizer, prompts, settings)

    def response_logprobs(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi(token), entropy) for each response token, under the active adapter(s)."""
        return token_logprobs(
            self.model,
            rollout.input_ids,
            rollout.attention_mask,
            rollout.response_ids,
            self.temperature,
        )

    def policy_logprobs(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.set_adapter(POLICY)
        return self.response_logprobs(rollout)

    def reference_logprobs(self, rollout: Rollout) -> torch.Tensor:
        with self.model.disable_adapter():
            return self.response_logprobs(rollout)[0]

    def values(self, rollout: Rollout) -> torch.Tensor:
        """V(s_t) for the state before each response token, from the critic adapter."""
        self.model.set_adapter(CRITIC)
        hidden = self.backbone(
            input_ids=rollout.input_ids,
            attention_mask=rollout.attention_mask,
            position_ids=position_ids(rollout.attention_mask),
            use_cache=False,
        ).last_hidden_state
        start = rollout.query_length - 1
        states = hidden[:, start : start + rollout.response_ids.shape[1]]
        return self.value_head(states.float()).squeeze(-1)


def train_ppo(
    config: PPORunConfig,
    prompts: Sequence[Prompt],
    output_dir: str | Path,
    *,
    reward_model_path: str | Path | None = None,
    reward_fn: RewardFunction | None = None,
    on_metrics: MetricsCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> RunResult:
    """Optimise a LoRA policy with PPO; the adapter lands in `<output_dir>/adapter`.

    The reward is either `reward_model_path`, a directory written by `train_reward_model`, or
    `reward_fn`, a python function from full texts (rendered prompt + response) to scores; exactly one
    must be given. Reruns with the same `output_dir` resume from its newest checkpoint.
    """
    if (reward_model_path is None) == (reward_fn is None):
        raise ValueError("Give train_ppo exactly one of reward_model_path and reward_fn.")
    if not prompts:
        raise ValueError("PPO needs at least one prompt.")
    if config.generation.top_p < 1.0 or config.generation.top_k > 0:
        # The ratio pi/pi_old is computed on the full softmax; truncated sampling breaks it.
        logger.warning(
            "PPO samples with top_p=%s, top_k=%s, but its logprobs assume plain temperature "
            "sampling; the importance ratios will be biased.",
            config.generation.top_p,
            config.generation.top_k,
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)

    tokenizer = load_tokenizer(config.base_model)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{config.base_model} has no EOS token; PPO needs one to end responses.")
    score_texts = reward_fn or _reward_model_scorer(reward_model_path, config)
    agent, plan = _build_agent(config, tokenizer, prompts)
    model = agent.model
    micro_batch = plan.micro_batch_size
    policy_params, critic_params = agent.parameters(POLICY), agent.parameters(CRITIC)
    optimizer, scheduler, kl_controller = _build_optimization(config, policy_params, critic_params)

    recorder = MetricsRecorder(output_dir, on_metrics)
    checkpoints_dir = output_dir / CHECKPOINTS_DIRNAME
    start_step, resumed_step = 0, None
    normalization = ppo_math.ScoreNormalization()
    checkpoint = latest_checkpoint(checkpoints_dir)
    if checkpoint is not None:
        start_step, normalization = _load_checkpoint(
            checkpoint, agent, optimizer, scheduler, kl_controller
        )
        resumed_step = start_step
        recorder.resume_at(start_step)
        logger.info("Resuming PPO from %s (step %d).", checkpoint, start_step)
    elif config.reward_normalization_samples:
        normalization = _fit_score_normalization(agent, tokenizer, prompts, score_texts, config)
        logger.info(
            "Reward normalised by the starting policy's scores: mean %.3f, std %.3f.",
            normalization.mean,
            normalization.std,
        )

    metrics: dict = {}
    for step in range(start_step, config.total_steps):
        check_cancelled(should_cancel, step)
        started = time.perf_counter()
        batch_prompts = _prompts_for_step(prompts, step, config.prompts_per_step, config.seed)
        rollout, rollout_stats, generations = _collect_rollout(
            agent,
            tokenizer,
            batch_prompts,
            score_texts,
            normalization,
            kl_controller,
            config,
            micro_batch,
        )
        rolled_out = time.perf_counter()
        update_stats = _ppo_update(
            agent, rollout, optimizer, scheduler, policy_params, critic_params, config, micro_batch
        )
        kl_controller.update(rollout_stats["kl"], n_steps=len(generations))
        tokens = int(rollout.attention_mask.sum())
        metrics = {
            "step": step + 1,
            **rollout_stats,
            **update_stats,
            "loss": update_stats["policy_loss"]
            + config.value_loss_coef * update_stats["value_loss"],
            "kl_coef": kl_controller.value,
            "learning_rate": scheduler.get_last_lr()[0],
            "tokens_per_s": tokens / (time.perf_counter() - started),
            # Sampling, scoring and the reference and value passes, against the PPO epochs.
            "rollout_s": rolled_out - started,
            "update_s": time.perf_counter() - rolled_out,
            "gpu_memory_gb": gpu_memory_gb(),
        }
        if (step + 1) % config.log_every == 0 or step + 1 == config.total_steps:
            recorder.report(metrics)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.total_steps:
            recorder.flush()
            _save_checkpoint(
                checkpoints_dir,
                step + 1,
                agent,
                optimizer,
                scheduler,
                kl_controller,
                normalization,
            )

    adapter_dir = _save_policy_adapter(model, tokenizer, output_dir)
    final = recorder.finish(
        {
            **metrics,
            "step": config.total_steps,
            "micro_batch_size": plan.micro_batch_size,
            "gradient_checkpointing": plan.gradient_checkpointing,
            "reward_normalization_mean": normalization.mean,
            "reward_normalization_std": normalization.std,
        }
    )
    return RunResult(
        output_dir=output_dir,
        adapter_dir=adapter_dir,
        metrics_path=recorder.path,
        final_metrics=final,
        steps=config.total_steps,
        resumed_from_step=resumed_step,
        history=list(recorder.history),
    )


def _build_agent(
    config: PPORunConfig, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]
) -> tuple[PolicyAndCritic, BatchPlan]:
    """The base with its two adapters and the value head, and the micro-batch plan for it."""
    base = load_base_model(config.base_model, quantize=config.quantize, tokenizer=tokenizer)
    fuse_kernels(base, config.fused_kernels)
    rollout_size = config.prompts_per_step * config.generation.num_samples
    minibatch_size = rollout_size // config.num_minibatches
    merged = config.merged_sampler and merged_copy_fits(base)
    plan = choose_batch_plan(
        base,
        seq_len=min(
            config.max_length,
            _longest_prompt(tokenizer, prompts) + config.generation.max_new_tokens,
        ),
        target_batch_size=minibatch_size if config.batch_size is None else config.batch_size,
        gradient_checkpointing=config.gradient_checkpointing,
        reserved_bytes=copy_bytes(base) if merged else 0,
    )
    plan = replace(plan, micro_batch_size=min(plan.micro_batch_size, minibatch_size))
    # Before the adapters exist: preparing a 4-bit base freezes every parameter it finds.
    base = prepare_for_training(base, gradient_checkpointing=plan.gradient_checkpointing)
    model = get_peft_model(base, build_lora_config(config.lora), adapter_name=POLICY)
    model.add_adapter(CRITIC, build_lora_config(config.lora))
    fuse_lora(model, config.fused_kernels)
    _disable_dropout(model)

    hidden_size = model.get_base_model().config.get_text_config().hidden_size
    # Zero-initialised, so the critic starts by predicting 0 for every state.
    value_head = torch.nn.Linear(hidden_size, 1, device=model.device, dtype=torch.float32)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    sampler = MergedSampler(model, POLICY) if merged else None
    return PolicyAndCritic(model, value_head, config.generation.temperature, sampler), plan


def _build_optimization(
    config: PPORunConfig,
    policy_params: list[torch.nn.Parameter],
    critic_params: list[torch.nn.Parameter],
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, KLController]:
    # Adam eps 1e-5 and a learning rate annealed linearly to 0 (N+ details).
    optimizer = torch.optim.AdamW(
        [{"params": policy_params}, {"params": critic_params}],
        lr=config.learning_rate,
        eps=1e-5,
        weight_decay=0.0,
    )
    total_updates = config.total_steps * config.ppo_epochs * config.num_minibatches
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda update: max(0.0, 1.0 - update / max(total_updates, 1))
    )
    kl_controller: KLController
    if config.target_kl is None:
        kl_controller = ppo_math.FixedKLController(config.kl_coef)
    else:
        kl_controller = ppo_math.AdaptiveKLController(
            config.kl_coef, config.target_kl, config.kl_horizon
        )
    return optimizer, scheduler, kl_controller


def _reward_model_scorer(path: str | Path, config: PPORunConfig) -> RewardFunction:
    from training.engine.reward import load_reward_model

    reward_model = load_reward_model(path, quantize=config.quantize)
    return lambda texts: reward_model.score(texts, batch_size=config.reward_batch_size)


@torch.no_grad()
def _sample_and_score(
    agent: PolicyAndCritic,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    score_texts: RewardFunction,
    settings: GenerationSettings,
) -> tuple[Generations, torch.Tensor]:
    """The policy's responses to `prompts` and the reward's raw score of each."""
    generations = agent.sample(tokenizer, prompts, settings)
    texts = [
        prompt + text for prompt, text in zip(generations.prompts, generations.texts, strict=True)
    ]
    scores = torch.tensor([float(s) for s in score_texts(texts)], device=agent.model.device)
    if scores.shape[0] != len(texts):
        raise ValueError(f"The reward returned {scores.shape[0]} scores for {len(texts)} texts.")
    return generations, scores


def _fit_score_normalization(
    agent: PolicyAndCritic,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    score_texts: RewardFunction,
    config: PPORunConfig,
) -> ppo_math.ScoreNormalization:
    """Mean and std of the reward over the starting policy's responses, cycling through the prompts."""
    per_prompt = config.generation.num_samples
    count = -(-config.reward_normalization_samples // per_prompt)
    picked = [prompts[index % len(prompts)] for index in range(count)]
    _, scores = _sample_and_score(agent, tokenizer, picked, score_texts, config.generation)
    return ppo_math.ScoreNormalization.fit(scores)


@torch.no_grad()
def _collect_rollout(
    agent: PolicyAndCritic,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Prompt],
    score_texts: RewardFunction,
    normalization: ppo_math.ScoreNormalization,
    kl_controller: KLController,
    config: PPORunConfig,
    micro_batch: int,
) -> tuple[Rollout, dict[str, float], Generations]:
    generations, raw_scores = _sample_and_score(
        agent, tokenizer, prompts, score_texts, config.generation
    )
    device = agent.model.device
    has_eos = torch.tensor(generations.has_eos, device=device)
    scores = normalization.apply(raw_scores)
    if config.missing_eos_penalty is not None:
        scores = ppo_math.penalize_missing_eos(scores, has_eos, config.missing_eos_penalty)

    response_ids = generations.response_ids.to(device)
    response_mask = generations.response_mask.to(device)
    rollout = Rollout(
        input_ids=torch.cat([generations.query_ids.to(device), response_ids], dim=1),
        attention_mask=torch.cat([generations.query_mask.to(device), response_mask], dim=1),
        response_ids=response_ids,
        response_mask=response_mask,
    )
    agent.model.eval()
    logprobs, ref_logprobs, values, entropies = [], [], [], []
    for index in _chunks(len(generations), micro_batch, device):
        part = rollout.rows(index)
        policy_logprobs, entropy = agent.policy_logprobs(part)
        logprobs.append(policy_logprobs)
        entropies.append(entropy)
        ref_logprobs.append(agent.reference_logprobs(part))
        values.append(agent.values(part))
    logprobs, ref_logprobs = torch.cat(logprobs), torch.cat(ref_logprobs)
    values, entropy = torch.cat(values), torch.cat(entropies)

    mask = response_mask.float()
    kl = ppo_math.per_token_kl(logprobs, ref_logprobs, config.kl_estimator) * mask
    rewards = ppo_math.shape_rewards(scores, kl, mask, kl_controller.value)
    if config.whiten_rewards:
        rewards = ppo_math.whiten(rewards, mask, shift_mean=False)
    advantages, returns = ppo_math.gae(rewards, values, mask, config.gamma, config.lam)
    # Advantages whitened over the whole batch (N+ details, "advantage whitening").
    rollout.logprobs, rollout.values = logprobs, values * mask
    rollout.advantages, rollout.returns = ppo_math.whiten(advantages, mask), returns

    sequence_kl = kl.sum(dim=1)
    stats = {
        "reward_mean": raw_scores.mean().item(),
        "reward_std": raw_scores.std(unbiased=False).item(),
        "penalized_reward_mean": scores.mean().item(),
        "kl": sequence_kl.mean().item(),
        "non_score_reward": (-kl_controller.value * sequence_kl).mean().item(),
        "entropy": ppo_math.masked_mean(entropy, mask).item(),
        "response_length": mask.sum(dim=1).mean().item(),
        "eos_fraction": has_eos.float().mean().item(),
        "value_mean": ppo_math.masked_mean(values, mask).item(),
    }
    return rollout, stats, generations


def _ppo_update(
    agent: PolicyAndCritic,
    rollout: Rollout,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    policy_params: list[torch.nn.Parameter],
    critic_params: list[torch.nn.Parameter],
    config: PPORunConfig,
    micro_batch: int,
) -> dict[str, float]:
    agent.model.train()
    size = rollout.input_ids.shape[0]
    minibatch_size = size // config.num_minibatches
    device = rollout.input_ids.device
    stats: dict[str, list[float]] = defaultdict(list)
    for _epoch in range(config.ppo_epochs):
        order = torch.randperm(size, device=device)
        for start in range(0, size, minibatch_size):
            minibatch = order[start : start + minibatch_size]
            for index in _chunks(len(minibatch), micro_batch, device):
                part = rollout.rows(minibatch[index])
                share = len(index) / len(minibatch)
                # Each adapter's loss is backpropagated before the other adapter is switched on.
                logprobs, _ = agent.policy_logprobs(part)
                policy = ppo_math.clipped_policy_loss(
                    logprobs, part.logprobs, part.advantages, part.response_mask, config.clip_range
                )
                (policy.loss * share).backward()
                value = ppo_math.clipped_value_loss(
                    agent.values(part),
                    part.values,
                    part.returns,
                    part.response_mask,
                    config.value_clip_range,
                )
                (config.value_loss_coef * value.loss * share).backward()
                stats["policy_loss"].append(policy.loss.item())
                stats["clip_fraction"].append(policy.clip_fraction.item())
                stats["approx_kl"].append(policy.approx_kl.item())
                stats["value_loss"].append(value.loss.item())
                stats["value_clip_fraction"].append(value.clip_fraction.item())
            torch.nn.utils.clip_grad_norm_(policy_params, config.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(critic_params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    agent.model.eval()
    return {name: float(np.mean(values)) for name, values in stats.items()}


def _chunks(size: int, chunk: int, device: torch.device) -> list[torch.Tensor]:
    return [torch.arange(s, min(s + chunk, size), device=device) for s in range(0, size, chunk)]


def _prompts_for_step(prompts: Sequence[Prompt], step: int, count: int, seed: int) -> list[Prompt]:
    """Prompts for `step`: passes over a fresh seeded shuffle per epoch, so a resumed run sees the
    same prompts at the same step."""
    picked = []
    for position in range(step * count, (step + 1) * count):
        epoch, offset = divmod(position, len(prompts))
        order = list(range(len(prompts)))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        picked.append(prompts[order[offset]])
    return picked


def _longest_prompt(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]) -> int:
    from training.engine.generation import render_prompt

    return max(len(tokenizer(render_prompt(tokenizer, p))["input_ids"]) for p in prompts)


def _disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _save_checkpoint(
    checkpoints_dir: Path,
    step: int,
    agent: PolicyAndCritic,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    kl_controller: KLController,
    normalization: ppo_math.ScoreNormalization,
) -> None:
    directory = checkpoints_dir / f"checkpoint-{step}"
    directory.mkdir(parents=True, exist_ok=True)
    # The marker makes a half-written checkpoint invisible to `latest_checkpoint`.
    marker = directory / ".incomplete"
    marker.touch()
    state = {
        "step": step,
        POLICY: get_peft_model_state_dict(agent.model, adapter_name=POLICY),
        CRITIC: get_peft_model_state_dict(agent.model, adapter_name=CRITIC),
        "value_head": agent.value_head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "kl_controller": kl_controller.state_dict(),
        "score_normalization": asdict(normalization),
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
    }
    torch.save(state, directory / _CHECKPOINT_FILENAME)
    marker.unlink()
    steps = sorted(
        (checkpoint_step(p), p) for p in checkpoints_dir.glob("checkpoint-*") if p.is_dir()
    )
    for _, old in steps[:-_KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    directory: Path,
    agent: PolicyAndCritic,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    kl_controller: KLController,
) -> tuple[int, ppo_math.ScoreNormalization]:
    """Restore a checkpoint; returns its step and the reward normalisation it was trained with."""
    # weights_only=False: the file holds python and numpy RNG states; it is our own checkpoint.
    state = torch.load(
        directory / _CHECKPOINT_FILENAME, map_location=agent.model.device, weights_only=False
    )
    set_peft_model_state_dict(agent.model, state[POLICY], adapter_name=POLICY)
    set_peft_model_state_dict(agent.model, state[CRITIC], adapter_name=CRITIC)
    agent.value_head.load_state_dict(state["value_head"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    kl_controller.load_state_dict(state["kl_controller"])
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    normalization = ppo_math.ScoreNormalization(**state.get("score_normalization", {}))
    return int(state["step"]), normalization


def _save_policy_adapter(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, output_dir: Path
) -> Path:
    """Write the policy adapter (and tokenizer) where `PeftModel.from_pretrained` finds it directly."""
    staging = output_dir / ".adapter-staging"
    shutil.rmtree(staging, ignore_errors=True)
    # PEFT writes a non-default adapter into a sub-directory named after it.
    model.save_pretrained(str(staging), selected_adapters=[POLICY])
    adapter_dir = output_dir / ADAPTER_DIRNAME
    shutil.rmtree(adapter_dir, ignore_errors=True)
    (staging / POLICY).rename(adapter_dir)
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer.save_pretrained(adapter_dir)
    return adapter_dir
