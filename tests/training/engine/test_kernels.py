"""Fused kernels: which modules are patched, and that a model off CUDA trains unfused or says why.

The kernels themselves are Triton and run on CUDA only (test_gpu.py compares them with transformers'
modules there); here a stand-in for liger-kernel computes the same maths in torch, so the selection
and the patched forward paths are checked on the CPU.
"""

import sys
import types

import pytest
import torch

from training.engine import kernels
from training.engine.kernels import fuse_kernels
from training.engine.loading import load_base_model


def test_off_cuda_training_stays_unfused_unless_fusion_is_required(tiny_model_dir):
    model = load_base_model(tiny_model_dir, quantize=False)
    assert fuse_kernels(model) == 0
    assert fuse_kernels(model, False) == 0
    assert "forward" not in vars(model.model.layers[0].mlp)
    with pytest.raises(ValueError, match="not on a CUDA device"):
        fuse_kernels(model, True)


@pytest.fixture
def stand_in_liger(monkeypatch):
    """liger_kernel.transformers.{rms_norm,swiglu} with torch forwards that count their calls."""
    calls = {"norm": 0, "mlp": 0}

    class LigerRMSNorm:
        def forward(self, hidden_states):
            calls["norm"] += 1
            assert (self.offset, self.casting_mode, self.in_place) == (0.0, "llama", False)
            variance = hidden_states.float().pow(2).mean(-1, keepdim=True)
            normed = hidden_states.float() * torch.rsqrt(variance + self.variance_epsilon)
            return self.weight * normed.to(hidden_states.dtype)

    class LigerSwiGLUMLP:
        def forward(self, x):
            calls["mlp"] += 1
            return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))

    package = types.ModuleType("liger_kernel.transformers")
    modules = {
        "liger_kernel": types.ModuleType("liger_kernel"),
        "liger_kernel.transformers": package,
        "liger_kernel.transformers.rms_norm": types.ModuleType("rms_norm"),
        "liger_kernel.transformers.swiglu": types.ModuleType("swiglu"),
    }
    modules["liger_kernel.transformers.rms_norm"].LigerRMSNorm = LigerRMSNorm
    modules["liger_kernel.transformers.swiglu"].LigerSwiGLUMLP = LigerSwiGLUMLP
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_norms_and_mlps_of_the_instance_are_patched_and_compute_the_same(
    tiny_model_dir, stand_in_liger, monkeypatch
):
    model = load_base_model(tiny_model_dir, quantize=False)
    other = load_base_model(tiny_model_dir, quantize=False)
    ids = torch.tensor([[5, 9, 13, 21, 34]])
    expected = model(input_ids=ids).logits
    # fuse_kernels reads the device from the model; the stand-in kernels run anywhere.
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda")))

    layers = len(model.model.layers)
    assert fuse_kernels(model) == 2 * layers + 1 + layers  # two norms a layer, the final norm, MLPs
    assert kernels.liger_available()
    fused = model(input_ids=ids).logits
    assert stand_in_liger == {"norm": 2 * layers + 1, "mlp": layers}
    torch.testing.assert_close(fused, expected)
    # Another instance of the same classes is untouched.
    other(input_ids=ids)
    assert stand_in_liger == {"norm": 2 * layers + 1, "mlp": layers}


def test_unsupported_model_types_are_left_alone_or_refused(
    tiny_model_dir, stand_in_liger, monkeypatch
):
    model = load_base_model(tiny_model_dir, quantize=False)
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda")))
    monkeypatch.setattr(model.config, "model_type", "gemma")
    assert fuse_kernels(model) == 0
    with pytest.raises(ValueError, match="model type 'gemma'"):
        fuse_kernels(model, True)
