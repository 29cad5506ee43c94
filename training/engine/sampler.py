"""A plain copy of the policy to sample rollouts from: the base's weights with the LoRA adapter merged in.

Decoding through a PEFT model, and through a 4-bit base above all, is bound by kernel launches: every
linear layer dequantizes its weight and adds two LoRA products, one token at a time, and transformers
will not compile a bitsandbytes model. Before each rollout this copy takes W + scale * (B @ A) for every
adapted layer, with W dequantized from the very 4-bit weights the policy trains on, so both sample the
same distribution up to rounding. On CUDA it then decodes with a static KV cache, which transformers
compiles into CUDA graphs. The price is one more copy of the weights in the compute dtype.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from training.engine.config import GenerationSettings
from training.engine.examples import Prompt
from training.engine.generation import Generations, generate

logger = logging.getLogger(__name__)

# Prompt batches are left-padded to a multiple of this, so the static cache (prompt + new tokens) takes
# few distinct lengths and compiled decoding rarely meets a shape it has not captured yet.
PROMPT_LENGTH_BUCKET = 64


class MergedSampler:
    """Samples from `adapter` of `model` through a merged, unquantized copy; call `sync` after updates.

    A model without adapters is copied as it is (dequantized when 4-bit).
    """

    def __init__(self, model: PeftModel | PreTrainedModel, adapter: str):
        self.adapter = adapter
        base = model.get_base_model() if isinstance(model, PeftModel) else model
        self.dtype = torch.bfloat16 if _is_4bit(base) else base.dtype
        config = copy.deepcopy(base.config)
        # A config carrying a quantization_config would make transformers treat the copy as quantized.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        # The copy's random initialisation (overwritten below) must not move the random streams that
        # sampling draws from, or seeding before a call would not give the same responses.
        cuda = [base.device] if base.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.device(base.device):
            self.model: PreTrainedModel = AutoModelForCausalLM.from_config(config, dtype=self.dtype)
        self.model.eval().requires_grad_(False)
        self.model.generation_config = copy.deepcopy(base.generation_config)
        # Adapted layers: (the copy's linear layer, the PEFT layer whose base and adapter merge into it).
        adapted = [(n, m) for n, m in base.named_modules() if isinstance(m, LoraLayer)]
        if any(layer.use_dora.get(adapter) for _, layer in adapted):
            raise ValueError("The merged sampler does not support DoRA adapters.")
        copies = dict(self.model.named_modules())
        self._merged: list[tuple[torch.nn.Linear, LoraLayer]] = [
            (copies[name], layer) for name, layer in adapted
        ]
        self._copy_unadapted(base, {name + ".weight" for name, _ in adapted})
        self.sync()
        logger.info(
            "Rollouts sample from a merged %s copy of the policy (%d adapted layers).",
            str(self.dtype).removeprefix("torch."),
            len(self._merged),
        )

    @torch.no_grad()
    def sync(self) -> None:
        """Write W + scale * (B @ A) of the current adapter weights into the copy, in place (so CUDA
        graphs captured earlier read the new weights)."""
        for target, layer in self._merged:
            weight = _dense(layer.get_base_layer().weight).to(self.dtype)
            if self.adapter in layer.lora_A:
                lora_a = layer.lora_A[self.adapter].weight.to(self.dtype)
                lora_b = layer.lora_B[self.adapter].weight.to(self.dtype)
                weight = weight + layer.scaling[self.adapter] * (lora_b @ lora_a)
            target.weight.copy_(weight)

    def generate(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
    ) -> Generations:
        on_cuda = self.model.device.type == "cuda"
        if settings.cache_implementation is None and on_cuda:
            settings = dataclasses.replace(settings, cache_implementation="static")
        return generate(
            self.model,
            tokenizer,
            prompts,
            settings,
            pad_to_multiple_of=PROMPT_LENGTH_BUCKET if on_cuda else None,
        )

    @torch.no_grad()
    def _copy_unadapted(self, base: PreTrainedModel, merged_names: set[str]) -> None:
        """Embeddings, norms, the LM head: every weight outside the adapted layers, copied once."""
        targets = dict(self.model.named_parameters())
        for name, parameter in base.named_parameters():
            if "lora_" in name:
                continue
            name = name.replace(".base_layer.", ".")
            if name in merged_names:
                continue
            targets[name].copy_(_dense(parameter).to(self.dtype))


def copy_bytes(model: PreTrainedModel) -> int:
    """Bytes the merged copy of `model` (or of a PEFT model's base) takes, adapters left out."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    itemsize = 2 if _is_4bit(base) else base.dtype.itemsize
    total = 0
    for name, parameter in base.named_parameters():
        if "lora_" in name:
            continue
        quant_state = getattr(parameter, "quant_state", None)
        # A 4-bit weight is stored packed; its quant state knows the shape it unpacks to.
        total += quant_state.shape.numel() if quant_state is not None else parameter.numel()
    return total * itemsize


def merged_copy_fits(model: PreTrainedModel, share_of_free: float = 0.5) -> bool:
    """Whether the copy takes at most `share_of_free` of the free GPU memory (always, on the CPU):
    a 4-bit base is often chosen because a bf16 one would not fit beside the training state."""
    device = (model.get_base_model() if isinstance(model, PeftModel) else model).device
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    needed = copy_bytes(model)
    fits = needed <= share_of_free * free
    if not fits:
        logger.warning(
            "Sampling through the adapter: a merged copy (%.1f GiB) would take more than %d%% of "
            "the free GPU memory (%.1f GiB).",
            needed / 2**30,
            round(100 * share_of_free),
            free / 2**30,
        )
    return fits


def _is_4bit(model: PreTrainedModel) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False))


def _dense(parameter: torch.Tensor) -> torch.Tensor:
    """The weight as a plain tensor: dequantized when bitsandbytes stores it in 4 bits."""
    quant_state = getattr(parameter, "quant_state", None)
    if quant_state is None:
        return parameter.data
    import bitsandbytes as bnb

    return bnb.functional.dequantize_4bit(parameter.data, quant_state)
