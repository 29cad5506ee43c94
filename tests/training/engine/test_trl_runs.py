"""run_trainer: under bf16 autocast, LoRA inputs skip PEFT's fp32 round trip and nothing else changes."""

from types import SimpleNamespace

import pytest
import torch
from peft import get_peft_model
from peft.tuners.lora import LoraLayer
from torch.utils._python_dispatch import TorchDispatchMode

from training.engine.config import LoraSettings
from training.engine.loading import build_lora_config, load_base_model
from training.engine.trl_runs import run_trainer


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
    run_trainer(trainer, None)

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
    run_trainer(trainer, tmp_path / "checkpoint-4")
    assert trainer.copies == copies_with_cast
    assert trainer.seen == [str(tmp_path / "checkpoint-4")]
