"""Fused kernels for training: Liger Kernel's RMSNorm and SwiGLU in Llama-style models on CUDA, and
LoRA updates summed inside their matrix products (fuse_lora) everywhere.

With LoRA on a frozen ~1B base, much of a training step's GPU time goes outside the matrix products:
transformers' RMSNorm runs as several fp32 elementwise kernels and the MLP's SiLU-and-multiply as two,
each reading and writing the whole activation. Liger Kernel (Hsu et al. 2024) computes each in one
kernel, forward and backward. Only the modules of the given model instance are patched, never the
classes of transformers, so nothing else in the process changes: not a plain run beside it, not the
merged copy that PPO samples from (which torch compiles).
"""

from __future__ import annotations

import logging
import types

import torch
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# Model types whose RMSNorm is weight * x / rms(x) computed in fp32 (Liger's "llama" casting mode) and
# whose MLP is down(silu(gate(x)) * up(x)). Gemma's norms scale by 1 + weight, so it is not here.
FUSABLE_MODEL_TYPES = {"llama", "mistral", "qwen2", "qwen3"}


def liger_available() -> bool:
    try:
        import liger_kernel.transformers  # noqa: F401  (imports Triton, which needs a GPU build)
    except ImportError:
        return False
    return True


def fuse_kernels(model: PreTrainedModel, enabled: bool | None = None) -> int:
    """Patch `model`'s RMSNorms and SwiGLU MLPs with Liger's kernels; returns how many modules.

    `enabled` None fuses where it can (CUDA, liger-kernel installed, a supported model type) and
    True insists, with a clear error where it cannot. Call before adding adapters or after: the
    patched MLP calls whatever its projections are at the time.
    """
    if enabled is False:
        return 0
    model_type = getattr(model.config, "model_type", None)
    reason = None
    if model.device.type != "cuda":
        reason = "the model is not on a CUDA device"
    elif model_type not in FUSABLE_MODEL_TYPES:
        reason = f"model type {model_type!r} is not one of {sorted(FUSABLE_MODEL_TYPES)}"
    elif getattr(model.config, "hidden_act", None) not in ("silu", "swish"):
        reason = f"activation {model.config.hidden_act!r} is not SiLU"
    elif not liger_available():
        reason = "liger-kernel is not installed (pip install 'arbiter[gpu]')"
    if reason:
        if enabled:
            raise ValueError(f"fused_kernels was asked for, but {reason}.")
        logger.info("Training without fused kernels: %s.", reason)
        return 0

    from liger_kernel.transformers.rms_norm import LigerRMSNorm
    from liger_kernel.transformers.swiglu import LigerSwiGLUMLP

    patched = 0
    for module in model.modules():
        name = type(module).__name__
        if name.endswith("RMSNorm") and hasattr(module, "variance_epsilon"):
            # The attributes LigerRMSNorm.forward reads. Out of place: the in-place backward
            # overwrites the incoming gradient, safe only where nothing else reads it, for a
            # small saving in memory.
            module.offset, module.casting_mode = 0.0, "llama"
            module.in_place, module.row_mode = False, None
            module.forward = types.MethodType(LigerRMSNorm.forward, module)
            patched += 1
        elif name.endswith("MLP") and all(
            hasattr(module, part) for part in ("gate_proj", "up_proj", "down_proj")
        ):
            module.forward = types.MethodType(LigerSwiGLUMLP.forward, module)
            patched += 1
    logger.info("Fused kernels (Liger) in %d norm and MLP modules.", patched)
    return patched


def fuse_lora(model: torch.nn.Module, enabled: bool | None = None) -> int:
    """Add each LoRA layer's update to the base layer's output inside one matrix product; returns
    how many layers.

    PEFT computes `base(x) + B(A(x)) * scaling` as a product, a multiply and an add, the last two
    reading and writing the layer's whole output (and, for 4-bit layers, a defensive copy of it
    first). `addmm` folds the scaling and the sum into the product B's GEMM runs anyway: in the H100
    profile of a bf16-LoRA reward step the elementwise multiplies and adds, most of them LoRA's,
    took 49 of 302 ms. Patches `model`'s LoRA linear layers; off only where `enabled` is False, as
    fused_kernels is.
    """
    if enabled is False:
        return 0
    from peft.tuners.lora import LoraLayer

    patched = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and isinstance(
            getattr(module, "base_layer", None), torch.nn.Linear
        ):
            module.forward = types.MethodType(_lora_addmm_forward, module)
            patched += 1
    logger.info("LoRA updates summed inside their products in %d layers.", patched)
    return patched


def _fusable_adapter(layer, x: torch.Tensor) -> str | None:
    """The one active adapter of a vanilla LoRA layer whose update can join the base product."""
    adapters = [name for name in layer.active_adapters if name in layer.lora_A]
    if layer.disable_adapters or layer.merged or len(adapters) != 1:
        return None
    name = adapters[0]
    lora_A, lora_B = layer.lora_A[name], layer.lora_B[name]
    if name in layer.lora_variant or lora_B.bias is not None:
        return None
    # Outside autocast addmm takes one dtype throughout; PEFT casts and promotes.
    one_dtype = (
        x.dtype == layer.base_layer.weight.dtype == lora_A.weight.dtype == lora_B.weight.dtype
    )
    return name if one_dtype or torch.is_autocast_enabled(x.device.type) else None


def _lora_addmm_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """base(x) + scaling * A(x) @ B^T as one addmm. Adapters off or merged, several adapters, DoRA
    and other variants, a bias on B, and mixed dtypes outside autocast go to PEFT's forward."""
    name = None if args or kwargs else _fusable_adapter(self, x)
    if name is None:
        return type(self).forward(self, x, *args, **kwargs)
    result = self.base_layer(x)
    update = self.lora_A[name](self.lora_dropout[name](x))
    fused = torch.addmm(
        result.reshape(-1, result.shape[-1]),
        update.reshape(-1, update.shape[-1]),
        self.lora_B[name].weight.t(),
        alpha=self.scaling[name],
    )
    return fused.view(result.shape)
