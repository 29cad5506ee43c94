"""run_trainer: under bf16 autocast, LoRA inputs skip PEFT's fp32 round trip and nothing else changes;
the Trainer's per-step bookkeeping walks the module tree once."""

from types import SimpleNamespace

import pytest
import torch
from peft import get_peft_model
from peft.tuners.lora import LoraLayer
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import TrainerCallback

from training.engine.config import LoraSettings
from training.engine.loading import build_lora_config, load_base_model
from training.engine.trl_runs import one_module_walk, run_trainer


class Fp32Copies(TorchDispatchMode):
    """Counts copies that turn a bf16 tensor into fp32."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default and out.dtype == torch.float32:
            self.count += args[0].dtype == torch.bfloat16
        return out


class AutocastTrainer:
    """Stands in for a TRL trainer: train() runs one forward under bf16 autocast, as Trainer does."""

    def __init__(self, model, ids, bf16=True):
        self.model, self.ids, self.args = model, ids, SimpleNamespace(bf16=bf16)
        self.seen = []

    def train(self, resume_from_checkpoint=None):
        self.seen.append(resume_from_checkpoint)
        self.logits, self.copies = forward(self.model, self.ids)


def forward(model, ids):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), Fp32Copies() as copies:
        logits = model(input_ids=ids).logits
    return logits, copies.count


@pytest.fixture
def bf16_lora_model(tiny_model_dir):
    base = load_base_model(tiny_model_dir, quantize=False).to(torch.bfloat16)
    model = get_peft_model(base, build_lora_config(LoraSettings(rank=4, alpha=8, dropout=0.0)))
    for module in model.modules():
        if isinstance(module, LoraLayer):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.05)
    return model


def test_training_in_bf16_skips_the_fp32_round_trip_of_lora_inputs(bf16_lora_model):
    model = bf16_lora_model
    lora_layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert lora_layers[0].lora_A["default"].weight.dtype == torch.float32
    ids = torch.tensor([[5, 9, 13, 21, 34, 55]])
    expected, copies_with_cast = forward(model, ids)

    trainer = AutocastTrainer(model, ids)
    # Unfused, to see the cast alone: fused layers (test_kernels.py) never cast under autocast.
    run_trainer(trainer, None, fused=False)

    assert copies_with_cast - trainer.copies == len(lora_layers)
    torch.testing.assert_close(trainer.logits, expected, rtol=0, atol=0)
    # Outside the run, PEFT casts again (a bf16 input to fp32 adapters would fail without autocast).
    assert all(layer.cast_input_dtype_enabled for layer in lora_layers)
    assert forward(model, ids)[1] == copies_with_cast


def test_without_bf16_the_trainer_runs_as_it_is_and_resumes_from_the_checkpoint(
    bf16_lora_model, tmp_path
):
    ids = torch.tensor([[5, 9, 13]])
    _, copies_with_cast = forward(bf16_lora_model, ids)
    trainer = AutocastTrainer(bf16_lora_model, ids, bf16=False)
    run_trainer(trainer, tmp_path / "checkpoint-4", fused=False)
    assert trainer.copies == copies_with_cast
    assert trainer.seen == [str(tmp_path / "checkpoint-4")]


def test_reward_and_dpo_runs_train_in_bf16_with_fp32_adapters_and_no_input_casting(
    tiny_model_dir, tmp_path, preference_pairs, monkeypatch
):
    """As on CUDA: a bf16 base, fp32 LoRA weights, fused LoRA layers and the Trainer's bf16 autocast
    (here on the CPU).
    Every forward TRL makes inside train() (DPO's reference pass and the evaluation too) must run
    under autocast, or a bf16 input would meet an fp32 adapter with casting off and fail."""
    import math

    from training.engine import dpo, reward, trl_runs
    from training.engine.config import DPORunConfig, RewardRunConfig

    def bf16_arguments(*args, **kwargs):
        return {**trl_runs.trainer_arguments(*args, **kwargs), "bf16": True}

    def bf16_base(*args, **kwargs):
        return load_base_model(*args, **kwargs).to(torch.bfloat16)

    casting_during_training = []

    def spying_run_trainer(trainer, checkpoint, fused):
        layers = [m for m in trainer.model.modules() if isinstance(m, LoraLayer)]
        assert layers[0].lora_A["default"].weight.dtype == torch.float32
        trainer.add_callback(CastingSpy(layers, casting_during_training))
        run_trainer(trainer, checkpoint, fused)
        assert all(layer.cast_input_dtype_enabled for layer in layers)
        # The LoRA layers trained fused (kernels.fuse_lora), by default.
        assert fused is None and all("forward" in vars(layer) for layer in layers)

    for module in (reward, dpo):
        monkeypatch.setattr(module, "trainer_arguments", bf16_arguments)
        monkeypatch.setattr(module, "load_base_model", bf16_base)
        monkeypatch.setattr(module, "run_trainer", spying_run_trainer)
    common = dict(
        base_model=tiny_model_dir,
        max_steps=3,
        batch_size=8,
        gradient_accumulation_steps=1,
        max_length=64,
        lora=LoraSettings(rank=4, alpha=8, dropout=0.05),
        eval_fraction=0.2,
    )
    pairs = preference_pairs(40)
    rewards = reward.train_reward_model(RewardRunConfig(**common), pairs, tmp_path / "reward")
    preferences = dpo.train_dpo(DPORunConfig(**common), pairs, tmp_path / "dpo")

    assert math.isfinite(rewards.final_metrics["loss"])
    assert math.isfinite(preferences.final_metrics["loss"])
    assert preferences.final_metrics["eval_margin"] is not None
    assert casting_during_training and not any(casting_during_training)


class CastingSpy(TrainerCallback):
    """Notes, at every optimizer step, whether any LoRA layer would cast its input."""

    def __init__(self, layers, seen):
        self.layers, self.seen = layers, seen

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(any(layer.cast_input_dtype_enabled for layer in self.layers))


def test_one_module_walk_serves_a_run_and_mode_changes_still_reach_every_module(
    bf16_lora_model, monkeypatch
):
    model = bf16_lora_model
    modules = list(model.modules())
    parameters = list(model.parameters())
    expected_count = model.num_parameters(exclude_embeddings=True)
    walked = []
    plain_train = torch.nn.Module.train

    def counting_train(self, mode=True):
        walked.append(self)
        return plain_train(self, mode)

    monkeypatch.setattr(torch.nn.Module, "train", counting_train)

    def walks(call):
        walked.clear()
        call()
        return len(walked)

    with one_module_walk(model):
        # The first call walks, even when the top module already says it is training.
        assert walks(model.train) == len(modules)
        assert all(m.training for m in modules)
        assert walks(model.train) == 0
        assert walks(model.eval) == len(modules)
        assert not any(m.training for m in modules)
        assert walks(model.train) == len(modules)
        assert all(m.training for m in modules)
        assert list(model.parameters()) == parameters
        assert [p for _, p in model.named_parameters()] == parameters
        assert list(model.parameters(recurse=False)) == list(
            torch.nn.Module.parameters(model, recurse=False)
        )
        # A parameter replaced (as loading a checkpoint with assign=True does) is the one seen.
        layer = next(m for m in modules if isinstance(m, LoraLayer))
        replacement = torch.nn.Parameter(layer.lora_A["default"].weight.detach().clone())
        layer.lora_A["default"].weight = replacement
        assert any(p is replacement for p in model.parameters())
        parameters = list(torch.nn.Module.parameters(model))
        assert list(model.parameters()) == parameters
        assert model.num_parameters(exclude_embeddings=True) == expected_count
        # Counted once: without a way to count again, the count still comes.
        monkeypatch.setattr(model.base_model.model, "named_parameters", None)
        assert model.num_parameters(exclude_embeddings=True) == expected_count
        monkeypatch.undo()

    assert not {"train", "parameters", "num_parameters"} & vars(model).keys()
    assert model.num_parameters(exclude_embeddings=True) == expected_count
