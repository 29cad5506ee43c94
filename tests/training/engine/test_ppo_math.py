"""PPO maths against numbers worked out by hand (the working is in each test's comments)."""

import math

import pytest
import torch

from training.engine.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    ScoreNormalization,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gae,
    kl_k1,
    kl_k3,
    logprobs_from_logits,
    masked_mean,
    penalize_missing_eos,
    per_token_kl,
    shape_rewards,
    whiten,
)


def close(actual: torch.Tensor, expected: list | float) -> None:
    torch.testing.assert_close(
        actual, torch.tensor(expected, dtype=actual.dtype), atol=1e-5, rtol=1e-5
    )


def test_gae_three_tokens_by_hand():
    # gamma = 0.9, lam = 0.8, so gamma * lam = 0.72; V after the last token is 0.
    # Row 0: r = [0, 0, 1], V = [0.5, 0.6, 0.7]
    #   t=2: delta = 1 + 0.9*0 - 0.7 = 0.3                       A2 = 0.3
    #   t=1: delta = 0 + 0.9*0.7 - 0.6 = 0.03                    A1 = 0.03 + 0.72*0.3 = 0.246
    #   t=0: delta = 0 + 0.9*0.6 - 0.5 = 0.04                    A0 = 0.04 + 0.72*0.246 = 0.21712
    #   returns = A + V = [0.71712, 0.846, 1.0]
    # Row 1: mask [1, 1, 0]; the padded token's reward 5 and value 9 must be ignored.
    #   t=1: delta = 2 + 0 - 1 = 1                               A1 = 1
    #   t=0: delta = 0 + 0.9*1 - 1 = -0.1                        A0 = -0.1 + 0.72*1 = 0.62
    #   returns = [1.62, 2.0, 0]
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 5.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 1.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    close(advantages, [[0.21712, 0.246, 0.3], [0.62, 1.0, 0.0]])
    close(returns, [[0.71712, 0.846, 1.0], [1.62, 2.0, 0.0]])


def test_gae_with_lambda_one_and_gamma_one_is_reward_to_go_minus_value():
    # With gamma = lam = 1 the advantage telescopes to (sum of future rewards) - V_t.
    # r = [1, 2, 3] -> reward-to-go [6, 5, 3]; V = [1, 1, 1] -> A = [5, 4, 2].
    advantages, returns = gae(
        torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3), torch.ones(1, 3), gamma=1.0, lam=1.0
    )
    close(advantages, [[5.0, 4.0, 2.0]])
    close(returns, [[6.0, 5.0, 3.0]])


def test_kl_estimators_by_hand():
    # log p = [-1, -2], log q = [-1.5, -1]
    # k1 = log p - log q = [0.5, -1.0]
    # k3 = (r - 1) - log r, log r = log q - log p = [-0.5, 1.0]
    #    = [e^-0.5 - 1 + 0.5, e^1 - 1 - 1] = [0.1065307, 0.7182818]
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])
    close(kl_k1(logp, ref), [0.5, -1.0])
    close(kl_k3(logp, ref), [math.exp(-0.5) - 0.5, math.e - 2.0])
    close(per_token_kl(logp, ref, "k3"), [0.1065307, 0.7182818])
    with pytest.raises(ValueError):
        per_token_kl(logp, ref, "k2")


def test_k3_is_nonnegative_and_zero_at_equal_policies():
    logp = torch.log_softmax(torch.randn(4, 7), dim=-1)
    ref = torch.log_softmax(torch.randn(4, 7), dim=-1)
    assert (kl_k3(logp, ref) >= 0).all()
    close(kl_k3(logp, logp), torch.zeros(4, 7).tolist())


def test_shaped_rewards_put_score_on_last_token_and_kl_everywhere():
    # kl_coef = 0.1
    # row 0 (3 tokens): -0.1*[0.5, -1.0, 0.3] = [-0.05, 0.1, -0.03]; score 2 on the last -> 1.97
    # row 1 (2 tokens): -0.1*[0.2, 0.4] = [-0.02, -0.04]; score -1 on token 1 -> -1.04; pad -> 0
    scores = torch.tensor([2.0, -1.0])
    kl = torch.tensor([[0.5, -1.0, 0.3], [0.2, 0.4, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    close(shape_rewards(scores, kl, mask, kl_coef=0.1), [[-0.05, 0.1, 1.97], [-0.02, -1.04, 0.0]])


def test_whiten_masked_by_hand():
    # Masked entries [1, 2, 3]: mean 2, population variance (1 + 0 + 1) / 3 = 2/3, std 0.8164966.
    # (x - 2) / 0.8164966 = [-1.2247449, 0, 1.2247449]; the padded 100 becomes 0.
    # Without shifting the mean, 2 is added back: [0.7752551, 2, 3.2247449].
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    close(whiten(values, mask), [[-1.2247449, 0.0, 1.2247449, 0.0]])
    close(whiten(values, mask, shift_mean=False), [[0.7752551, 2.0, 3.2247449, 0.0]])


def test_missing_eos_penalty_only_hits_unfinished_responses():
    # penalty 1: [1.0 (has EOS) -> 1.0, 0.5 (no EOS) -> -0.5]
    close(
        penalize_missing_eos(torch.tensor([1.0, 0.5]), torch.tensor([True, False]), 1.0),
        [1.0, -0.5],
    )


def test_score_normalization_by_hand():
    # Scores [1, 2, 3, 6]: mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5, std 1.8708287.
    # New scores are shifted and scaled alike: (0 - 3) / 1.8708287 = -1.6035675, (10 - 3) / ... = 3.7416574.
    normalization = ScoreNormalization.fit(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert normalization.mean == pytest.approx(3.0)
    assert normalization.std == pytest.approx(1.8708287)
    close(normalization.apply(torch.tensor([0.0, 3.0, 10.0])), [-1.6035675, 0.0, 3.7416574])
    # The fitted scores themselves come out with mean 0 and std 1.
    fitted = normalization.apply(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert fitted.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert fitted.std(unbiased=False).item() == pytest.approx(1.0)


def test_score_normalization_of_equal_scores_only_shifts():
    # No spread to scale by: [2, 2, 2] has std 0, so 5 becomes 5 - 2 = 3 rather than blowing up.
    normalization = ScoreNormalization.fit(torch.tensor([2.0, 2.0, 2.0]))
    assert normalization == ScoreNormalization(mean=2.0, std=1.0)
    close(normalization.apply(torch.tensor([5.0])), [3.0])
    # The default leaves scores as they are.
    close(ScoreNormalization().apply(torch.tensor([-1.5, 4.0])), [-1.5, 4.0])


def test_clipped_policy_loss_by_hand():
    # clip 0.2; ratios r = [1.5, 0.5, 1.1] (old log p = 0), A = [1, 1, -2]; a 4th token is masked.
    # t0: -A*r = -1.5, -A*clip(r) = -1.2 -> max -1.2 (clipped term in force)
    # t1: -0.5, -0.8 -> max -0.5 (unclipped)
    # t2: 2.2, 2.2 -> 2.2 (inside the range, not counted as clipped)
    # loss = (-1.2 - 0.5 + 2.2) / 3 = 0.1666667; clip fraction 1/3
    # approx KL = 0.5 * mean(log(1.5)^2, log(0.5)^2, log(1.1)^2)
    #           = 0.5 * (0.1644020 + 0.4804530 + 0.0090840) / 3 = 0.1089898
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 5.0]]))
    old = torch.zeros(1, 4)
    advantages = torch.tensor([[1.0, 1.0, -2.0, 10.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    terms = clipped_policy_loss(logp, old, advantages, mask, clip_range=0.2)
    close(terms.loss, 0.5 / 3)
    close(terms.clip_fraction, 1 / 3)
    close(terms.approx_kl, 0.1089898)


def test_clipped_value_loss_by_hand():
    # clip 0.2
    # t0: V = 1.0, V_old = 0.5, R = 2: V_clip = 0.5 + 0.2 = 0.7; (1-2)^2 = 1, (0.7-2)^2 = 1.69 -> 1.69
    # t1: V = 0.0, V_old = 0.1, R = 0: V_clip = 0.1 - 0.1 = 0.0; both errors 0
    # loss = 0.5 * (1.69 + 0) / 2 = 0.4225; clipped error larger on 1 of 2 tokens
    terms = clipped_value_loss(
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([[0.5, 0.1]]),
        torch.tensor([[2.0, 0.0]]),
        torch.ones(1, 2),
        clip_range=0.2,
    )
    close(terms.loss, 0.4225)
    close(terms.clip_fraction, 0.5)


def test_adaptive_kl_controller_by_hand():
    # target 6, horizon 10000, start 0.1
    # KL 9 over 1000 steps: error = clip(9/6 - 1 = 0.5) = 0.2; beta = 0.1 * (1 + 0.2 * 0.1) = 0.102
    # KL 5.4 over 500 steps: error = 0.9 - 1 = -0.1; beta = 0.102 * (1 - 0.1 * 0.05) = 0.10149
    controller = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    controller.update(9.0, n_steps=1000)
    assert controller.value == pytest.approx(0.102)
    controller.update(5.4, n_steps=500)
    assert controller.value == pytest.approx(0.10149)
    restored = AdaptiveKLController(0.5, target=6.0, horizon=10_000)
    restored.load_state_dict(controller.state_dict())
    assert restored.value == pytest.approx(0.10149)


def test_fixed_kl_controller_never_moves():
    controller = FixedKLController(0.05)
    controller.update(100.0, n_steps=10_000)
    assert controller.value == 0.05


def test_logprobs_and_entropy_from_logits_by_hand():
    # logits [0, ln 3] -> p = [1/4, 3/4]; log p(token 1) = ln(3/4) = -0.2876821
    # entropy = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.3465736 + 0.2157616 = 0.5623351
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    close(logprobs_from_logits(logits, torch.tensor([[1]])), [[-0.2876821]])
    close(entropy_from_logits(logits), [[0.5623351]])


def test_masked_mean_ignores_padding():
    # (1 + 3) / 2 = 2, the padded 100 is left out
    close(masked_mean(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1, 1, 0])), 2.0)
