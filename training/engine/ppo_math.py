"""PPO-with-KL maths as pure tensor functions: KL estimators, reward shaping, GAE, losses, KL control.

Shapes: per-token tensors are [batch, response_len] with a 0/1 `mask` marking real response tokens
(through the first EOS). Nothing here touches a model, so every function is checked against numbers
worked out by hand in tests/training/engine/test_ppo_math.py.

References: Schulman et al. 2016 (GAE), Schulman et al. 2017 (PPO), Ziegler et al. 2019 (KL penalty
and adaptive controller), Ouyang et al. 2022 (InstructGPT), Huang et al. 2024 ("The N+ Implementation
Details of RLHF with PPO", cited below as "N+ details"), Schulman 2020 ("Approximating KL divergence").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.engine.config import KLEstimator


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population (biased) variance over the masked entries, as `tf.nn.moments` in lm-human-preferences."""
    mean = masked_mean(values, mask)
    return masked_mean((values - mean) ** 2, mask)


def whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Scale the masked entries' spread to unit variance around their mean, and move the mean to
    zero when `shift_mean` (else it stays as it was); the rest become 0.

    Rewards are whitened without shifting the mean, so that the batch's average reward level
    survives (not each reward's sign); advantages are whitened with it (N+ details, "reward
    whitening" and "advantage whitening").
    """
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under softmax(logits); logits [b, t, vocab], tokens [b, t]."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logprobs, 2, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-token entropy of softmax(logits): logsumexp(z) - sum softmax(z) * z."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k1 estimate of KL(policy || ref) from tokens sampled by the policy: log p - log q.

    Unbiased but can be negative per token (Schulman 2020). It is the penalty InstructGPT uses.
    """
    return logprobs - ref_logprobs


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate: (r - 1) - log r with r = q/p = exp(log q - log p).

    Unbiased, always >= 0 and lower-variance than k1 (Schulman 2020).
    """
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def per_token_kl(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator
) -> torch.Tensor:
    if estimator == "k1":
        return kl_k1(logprobs, ref_logprobs)
    if estimator == "k3":
        return kl_k3(logprobs, ref_logprobs)
    raise ValueError(f"Unknown KL estimator {estimator!r}; use 'k1' or 'k3'.")


@dataclass(frozen=True)
class ScoreNormalization:
    """Gain and bias that map raw reward scores to mean 0, std 1 on a reference sample of them."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, scores: torch.Tensor, eps: float = 1e-6) -> ScoreNormalization:
        """From the scores of the starting policy's responses (Ziegler et al. 2019 normalise the
        reward model to mean 0, variance 1 on samples of the initial policy).

        Equal scores carry no scale, so they are only shifted (dividing by ~0 would blow up).
        """
        std = scores.float().std(unbiased=False).item()
        return cls(mean=scores.float().mean().item(), std=std if std > eps else 1.0)

    def apply(self, scores: torch.Tensor) -> torch.Tensor:
        return (scores - self.mean) / self.std


def penalize_missing_eos(
    scores: torch.Tensor, has_eos: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Subtract `penalty` from the score of each response that was cut off before emitting EOS.

    N+ details (EOS trick): the reward model scores truncated text as if it were complete, so an
    unfinished response must be made worse than a finished one.
    """
    return scores - penalty * (~has_eos.bool()).to(scores.dtype)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token in each row (0 for an empty row)."""
    return (mask.long().sum(dim=1) - 1).clamp(min=0)


def shape_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: -kl_coef * KL_t at every response token, plus the sequence score at the last.

    Ziegler et al. 2019, eq. 2; InstructGPT objective (Ouyang et al. 2022, eq. 2) spread over tokens.
    """
    rewards = -kl_coef * kl * mask.to(kl.dtype)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16), returns = advantages + values.

    delta_t = r_t + gamma * V_{t+1} - V_t and A_t = delta_t + gamma * lam * A_{t+1}, with V = 0 after the
    last real token, so the episode ends at EOS (or at the length limit).
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


@dataclass
class PolicyLossTerms:
    loss: torch.Tensor
    clip_fraction: torch.Tensor
    # 0.5 * E[(log pi - log pi_old)^2], a cheap KL(old || new) estimate to watch for overly large steps.
    approx_kl: torch.Tensor


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> PolicyLossTerms:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), negated to be minimised, token-averaged.

    clip_fraction is the share of tokens where the clipped term is the one in force.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return PolicyLossTerms(
        loss=masked_mean(torch.maximum(unclipped, clipped), mask),
        clip_fraction=masked_mean((clipped > unclipped).to(logprobs.dtype), mask),
        approx_kl=0.5 * masked_mean(log_ratio**2, mask),
    )


@dataclass
class ValueLossTerms:
    loss: torch.Tensor
    clip_fraction: torch.Tensor


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> ValueLossTerms:
    """0.5 * max((V - R)^2, (V_clip - R)^2) with V_clip = V_old + clip(V - V_old, -eps, eps).

    The value clipping of OpenAI's baselines PPO2, kept in RLHF by lm-human-preferences (N+ details).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    return ValueLossTerms(
        loss=0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask),
        clip_fraction=masked_mean((clipped_error > unclipped_error).to(values.dtype), mask),
    )


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing adapts; present so both controllers share one interface."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = state["value"]


class AdaptiveKLController:
    """Steers the KL coefficient so that the policy's KL to the reference tracks `target`.

    Ziegler et al. 2019, section 2.2: e = clip(KL / target - 1, -0.2, 0.2) and
    beta <- beta * (1 + e * n_steps / horizon), as in lm-human-preferences' AdaptiveKLController.
    """

    def __init__(self, init_value: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ValueError("The adaptive KL controller needs a positive target and horizon.")
        self.value = init_value
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = state["value"]
