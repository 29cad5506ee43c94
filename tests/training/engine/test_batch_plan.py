"""Batch planning: fixed plan on CPU, explicit settings respected, the probed plan's arithmetic."""

import torch

from training.engine import batch_plan
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


GIB = 2**30


class _ModelOnCuda:
    """All that the planner reads of a model before it probes one."""

    device = torch.device("cuda")


def test_probed_plan_fits_the_budget_less_what_is_reserved(monkeypatch):
    monkeypatch.setattr(batch_plan.torch.cuda, "is_available", lambda: True)

    # (fixed, per sequence, budget): checkpointing cuts the cost of a sequence to a quarter.
    def probe(model, seq_len, checkpointing, memory_fraction):
        return 2 * GIB, GIB // 4 if checkpointing else GIB, 20 * GIB

    monkeypatch.setattr(batch_plan, "_probe", probe)
    plan = choose_batch_plan(
        _ModelOnCuda(), seq_len=512, target_batch_size=32, sequences_per_example=2
    )
    # 18 sequences fit, 9 pairs, rounded down to a power of two.
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps) == (8, 4)
    assert not plan.gradient_checkpointing
    assert plan.predicted_peak_gb == 2 + 16

    # With 12 GiB kept for the sampling copy only 3 pairs fit, too few: checkpointing makes 12 fit.
    reserved = choose_batch_plan(
        _ModelOnCuda(),
        seq_len=512,
        target_batch_size=32,
        sequences_per_example=2,
        reserved_bytes=12 * GIB,
    )
    assert (reserved.micro_batch_size, reserved.gradient_accumulation_steps) == (8, 4)
    assert reserved.gradient_checkpointing
