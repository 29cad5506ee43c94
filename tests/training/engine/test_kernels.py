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


class TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Linear(12, 16), torch.nn.Linear(16, 8)

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def lora_pair(dtype=torch.float32):
    """Two identical LoRA models (non-zero B, so the update counts), the second one fused."""
    from peft import LoraConfig, get_peft_model

    models = []
    for _ in range(2):
        torch.manual_seed(0)
        base = TwoLayers().to(dtype)
        config = LoraConfig(r=4, lora_alpha=12, target_modules=["first", "second"])
        model = get_peft_model(base, config)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.2)
        models.append(model)
    assert kernels.fuse_lora(models[1]) == 2
    return models


class CountAddmm(torch.overrides.TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.addmm
        return func(*args, **(kwargs or {}))


def outputs_and_grads(model, x, autocast=False):
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    out.float().square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out, x.grad, grads


def test_fused_lora_computes_what_peft_does_in_one_addmm_per_layer():
    plain, fused = lora_pair()
    x = torch.randn(3, 5, 12)
    expected, expected_dx, expected_grads = outputs_and_grads(plain, x)
    with CountAddmm() as counted:
        out, dx, grads = outputs_and_grads(fused, x)
    assert counted.calls == 2
    # The same sums in another order: equal to fp32 rounding.
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(dx, expected_dx, atol=1e-5, rtol=1e-4)
    assert grads.keys() == expected_grads.keys() and len(grads) == 4  # A and B of both layers
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=1e-4)


def relative_error(actual, expected):
    actual, expected = actual.detach().float(), expected.detach().float()
    return float((actual - expected).norm() / expected.norm())


def test_fused_lora_under_bf16_autocast_matches_peft_to_bf16_precision():
    plain, fused = lora_pair()
    x = torch.randn(3, 5, 12)
    expected, expected_dx, expected_grads = outputs_and_grads(plain, x, autocast=True)
    with CountAddmm() as counted:
        out, dx, grads = outputs_and_grads(fused, x, autocast=True)
    assert counted.calls == 2
    assert out.dtype == expected.dtype == torch.bfloat16
    # PEFT rounds the update, its scaled copy and the sum to bf16 (8 bits of mantissa); addmm
    # rounds once.
    assert relative_error(out, expected) < 0.02
    assert relative_error(dx, expected_dx) < 0.03
    for name, grad in grads.items():
        assert grad.dtype == torch.float32  # the adapters stay fp32
        assert relative_error(grad, expected_grads[name]) < 0.03, name


def test_fused_lora_leaves_disabled_merged_and_mixed_dtype_layers_to_peft():
    plain, fused = lora_pair()
    x = torch.randn(4, 12)
    with CountAddmm() as counted, torch.no_grad():
        with plain.disable_adapter():
            base_out = plain(x)
        with fused.disable_adapter():
            torch.testing.assert_close(fused(x), base_out)
        fused.merge_adapter()
        merged_out = fused(x)
        fused.unmerge_adapter()
    assert counted.calls == 0
    torch.testing.assert_close(merged_out, plain(x), atol=1e-5, rtol=1e-5)

    # A bf16 base with fp32 adapters outside autocast: PEFT casts and promotes, and so the same.
    plain, fused = lora_pair()
    for model in (plain, fused):
        model.get_base_model().to(torch.bfloat16)
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.data = parameter.data.float()
    x = torch.randn(4, 12, dtype=torch.bfloat16)
    with CountAddmm() as counted, torch.no_grad():
        out = fused(x)
    assert counted.calls == 0
    torch.testing.assert_close(out, plain(x), atol=0, rtol=0)


def test_fused_lora_can_be_turned_off():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(TwoLayers(), LoraConfig(r=2, target_modules=["first"]))
    assert kernels.fuse_lora(model, False) == 0
    assert not any("forward" in vars(module) for module in model.modules())
