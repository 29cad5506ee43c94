"""Load a base model and tokenizer for (Q)LoRA training, the same code on CUDA and CPU.

On CUDA the base is quantized to 4-bit NF4 with double quantization and bf16 compute, and LoRA adapters
train on top (QLoRA, Dettmers et al. 2023, section 3). Without CUDA the base stays in fp32 and the same
adapters make plain LoRA; one log line says which path was taken.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from peft import LoraConfig, TaskType, prepare_model_for_kbit_training
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from training.engine.config import LoraSettings

logger = logging.getLogger(__name__)

ModelKind = Literal["causal_lm", "reward"]

# Heads that must stay in full precision: bitsandbytes would otherwise quantize the reward head too.
_UNQUANTIZED_HEADS = ["lm_head", "score", "classifier"]


def device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )


def is_quantization_available() -> bool:
    """4-bit loading needs CUDA and an importable bitsandbytes."""
    if not torch.cuda.is_available():
        return False
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_quantize(quantize: bool | None) -> bool:
    """None means 'QLoRA where possible'; True without CUDA falls back to LoRA with a warning."""
    available = is_quantization_available()
    if quantize is None:
        return available
    if quantize and not available:
        logger.warning(
            "4-bit quantization was asked for but needs CUDA and bitsandbytes; using plain LoRA."
        )
        return False
    return quantize


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Tokenizer with a pad token distinct from EOS, padding on the left for batched generation.

    A pad equal to EOS would hide the EOS from the loss masks and the missing-EOS check (Huang et al.
    2024, detail on EOS handling), so when the tokenizer has none (or pads with EOS) we use UNK, or add
    a `<pad>` token; `fit_embeddings` then grows the model to match.
    """
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    pad_is_usable = (
        tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    )
    if not pad_is_usable:
        if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
        logger.info(
            "Tokenizer of %s pads with %r (distinct from EOS).", name_or_path, tokenizer.pad_token
        )
    tokenizer.padding_side = "left"
    return tokenizer


def load_base_model(
    name_or_path: str,
    *,
    kind: ModelKind = "causal_lm",
    quantize: bool | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> PreTrainedModel:
    """The frozen base: a causal LM, or a sequence classifier with one output for reward models.

    With `quantize` (default: when CUDA is available) the linear layers load in 4-bit NF4 with double
    quantization and bf16 compute. Pass the tokenizer from `load_tokenizer` so the embeddings grow to
    fit a pad token it may have added.
    """
    quantized = resolve_quantize(quantize)
    kwargs: dict = {}
    if kind == "reward":
        kwargs["num_labels"] = 1
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=_UNQUANTIZED_HEADS,
        )
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": torch.cuda.current_device()}
        logger.info("Loading %s in 4-bit NF4 for QLoRA.", name_or_path)
    elif torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": torch.cuda.current_device()}
        logger.info("Loading %s in bf16 for LoRA (quantization off).", name_or_path)
    else:
        kwargs["dtype"] = torch.float32
        logger.info(
            "No CUDA: loading %s in fp32 on the CPU with plain LoRA (no 4-bit quantization).",
            name_or_path,
        )

    auto_class = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
    model = auto_class.from_pretrained(name_or_path, **kwargs)
    if tokenizer is not None:
        fit_embeddings(model, tokenizer)
    return model


def fit_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Grow the embeddings to the tokenizer and point the model's pad id at the tokenizer's."""
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if tokenizer.eos_token_id is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id


def is_quantized(model: PreTrainedModel) -> bool:
    return bool(
        getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    )


def prepare_for_training(
    model: PreTrainedModel, *, gradient_checkpointing: bool
) -> PreTrainedModel:
    """Ready a frozen base for adapter training.

    A quantized base goes through `prepare_model_for_kbit_training` (norms in fp32, input grads on, as
    the QLoRA recipe does). Gradient checkpointing uses the non-reentrant variant, which works with
    frozen inputs and PEFT.
    """
    checkpointing_kwargs = {"use_reentrant": False}
    if is_quantized(model):
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpointing_kwargs,
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing_kwargs)
        model.enable_input_require_grads()
    # Training never reads a KV cache (generation asks for one itself), and building one costs a copy
    # of every layer's keys and values per forward pass; it also conflicts with checkpointing.
    model.config.use_cache = False
    return model


def build_lora_config(settings: LoraSettings, kind: ModelKind = "causal_lm") -> LoraConfig:
    """PEFT LoraConfig for the settings; reward models also save their (fully trained) score head."""
    task_type = TaskType.SEQ_CLS if kind == "reward" else TaskType.CAUSAL_LM
    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        # The reward head is trained in full and saved with the adapter (PEFT's modules_to_save),
        # and kept out of the LoRA targets so "all-linear" does not wrap it twice.
        exclude_modules=_UNQUANTIZED_HEADS if kind == "reward" else None,
        bias="none",
        task_type=task_type,
    )
