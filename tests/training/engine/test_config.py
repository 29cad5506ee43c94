"""Run configs refuse values that would only fail later on the GPU worker; examples split stably."""

import pytest

from training.engine.config import GenerationSettings, LoraSettings, PPORunConfig, RewardRunConfig
from training.engine.examples import PreferencePair, split_holdout


def test_ppo_config_checks_minibatches_and_kl_estimator():
    with pytest.raises(ValueError, match="equal minibatches"):
        PPORunConfig(base_model="m", prompts_per_step=6, num_minibatches=4)
    with pytest.raises(ValueError, match="kl_estimator"):
        PPORunConfig(base_model="m", kl_estimator="k2")
    config = PPORunConfig(
        base_model="m", prompts_per_step=4, generation=GenerationSettings(num_samples=2)
    )
    assert config.to_dict()["generation"]["num_samples"] == 2


def test_settings_reject_impossible_values():
    with pytest.raises(ValueError):
        GenerationSettings(temperature=0)
    with pytest.raises(ValueError):
        GenerationSettings(top_p=1.5)
    with pytest.raises(ValueError):
        LoraSettings(rank=0)
    with pytest.raises(ValueError):
        RewardRunConfig(base_model="m", eval_fraction=1.0)


def test_split_holdout_is_seeded_and_disjoint():
    pairs = [PreferencePair(chosen=f"c{i}", rejected=f"r{i}") for i in range(20)]
    train, held_out = split_holdout(pairs, 0.25, seed=3)
    assert len(held_out) == 5 and len(train) == 15
    assert {p.chosen for p in train}.isdisjoint({p.chosen for p in held_out})
    assert split_holdout(pairs, 0.25, seed=3) == (train, held_out)
    assert split_holdout(pairs, 0.0, seed=3)[1] == []
