"""Batch planning: fixed plan on CPU, explicit settings respected."""

from training.engine.batch_plan import choose_batch_plan
from training.engine.config import RewardRunConfig
from training.engine.loading import load_base_model
from training.engine.trl_runs import plan_batches


def test_cpu_plan_splits_the_target_batch_without_probing(tiny_model_dir):
    model = load_base_model(tiny_model_dir)
    plan = choose_batch_plan(model, seq_len=64, target_batch_size=32)
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps) == (8, 4)
    assert plan.gradient_checkpointing is False
    assert plan.predicted_peak_gb is None
    assert choose_batch_plan(model, seq_len=64, gradient_checkpointing=True).gradient_checkpointing


def test_explicit_batch_settings_bypass_the_planner(tiny_model_dir):
    model = load_base_model(tiny_model_dir)
    config = RewardRunConfig(base_model=tiny_model_dir, batch_size=3, gradient_accumulation_steps=5)
    plan = plan_batches(config, model, sequences_per_example=2)
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps) == (3, 5)
    assert plan.reason == "set in the run config"
