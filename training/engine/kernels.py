"""Fused Triton kernels for training on CUDA: Liger Kernel's RMSNorm and SwiGLU in Llama-style models.

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
