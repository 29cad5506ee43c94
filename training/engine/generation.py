"""Batched sampling from a policy (the base with whatever adapter is active).

Prompts are left-padded so every row's last prompt token sits at the same column and new tokens line
up; responses are cut after their first EOS. Besides the texts, `Generations` keeps the token tensors
that PPO needs to score and train on exactly what was sampled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from training.engine.config import GenerationSettings
from training.engine.examples import Prompt


@dataclass
class Generations:
    """Responses, one row per sample; `prompt_indices[i]` says which input prompt row i answers."""

    prompts: list[str]
    texts: list[str]
    token_counts: list[int]
    prompt_indices: list[int]
    has_eos: list[bool]
    # [rows, prompt_len], left-padded, with its attention mask.
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    # [rows, response_len]: tokens up to and including the first EOS, then padding (mask 0).
    response_ids: torch.Tensor
    response_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.texts)


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> str:
    """A prompt as the text the model continues.

    Chat prompts (lists of {role, content}) go through the tokenizer's chat template, ending with the
    assistant's turn marker; a tokenizer without a template gets plain "Role: content" lines.
    """
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    lines = [f"{message['role'].capitalize()}: {message['content']}" for message in prompt]
    return "\n".join(lines) + "\nAssistant:"


def text_for_tokenizer(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """`text` for a tokenizer call that adds special tokens (as TRL's trainers make): without
    the BOS a chat template wrote (Llama 3's, Mistral's), which the tokenizer adds again; so the
    ids match those encode_prompts gives when sampling."""
    bos = tokenizer.bos_token
    if not bos or not text.startswith(bos):
        return text
    adds_bos = tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return text.removeprefix(bos) if adds_bos else text


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], pad_to_multiple_of: int | None = None
) -> dict[str, torch.Tensor]:
    """Left-padded ids; BOS is added only when the rendered text does not already carry it."""
    carries_bos = tokenizer.bos_token is not None and all(
        t.startswith(tokenizer.bos_token) for t in texts
    )
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        return tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            pad_to_multiple_of=pad_to_multiple_of,
            add_special_tokens=not carries_bos,
        )
    finally:
        tokenizer.padding_side = previous_side


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: GenerationSettings,
    *,
    pad_to_multiple_of: int | None = None,
) -> Generations:
    """Sample `settings.num_samples` responses per prompt, in batches of `settings.batch_size` prompts.

    `pad_to_multiple_of` left-pads each batch of prompts to a multiple of that many tokens.
    """
    rendered = [render_prompt(tokenizer, prompt) for prompt in prompts]
    chunk = settings.batch_size or len(rendered)
    was_training = model.training
    model.eval()
    pieces = []
    try:
        with settings_alone(model):
            for start in range(0, len(rendered), chunk):
                pieces.append(
                    _generate_chunk(
                        model,
                        tokenizer,
                        rendered[start : start + chunk],
                        settings,
                        start,
                        pad_to_multiple_of,
                    )
                )
    finally:
        model.train(was_training)
    return _concatenate(pieces, tokenizer.pad_token_id)


@contextmanager
def settings_alone(model: PreTrainedModel) -> Iterator[None]:
    """Sample with `GenerationSettings` alone. transformers fills every setting a call leaves
    unset from the model's generation_config.json, which may carry a repetition_penalty (Qwen2.5
    ships 1.05), min_p, no_repeat_ngram_size...: each reshapes the distribution sampled, which
    PPO's log-probs (plain softmax at the temperature) would then not describe, and which the
    settings people see would not say. Only the special tokens are kept."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    shipped = target.generation_config
    target.generation_config = GenerationConfig(
        bos_token_id=shipped.bos_token_id,
        eos_token_id=shipped.eos_token_id,
        pad_token_id=shipped.pad_token_id,
        decoder_start_token_id=shipped.decoder_start_token_id,
    )
    try:
        yield
    finally:
        target.generation_config = shipped


def _generate_chunk(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    settings: GenerationSettings,
    first_index: int,
    pad_to_multiple_of: int | None,
) -> Generations:
    encoded = encode_prompts(tokenizer, texts, pad_to_multiple_of).to(model.device)
    output = model.generate(
        **encoded,
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        max_new_tokens=settings.max_new_tokens,
        num_return_sequences=settings.num_samples,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        cache_implementation=settings.cache_implementation,
        # Training setups switch the model's cache off; sampling always wants it.
        use_cache=True,
    )
    prompt_len = encoded["input_ids"].shape[1]
    # num_return_sequences repeats each prompt's samples next to each other.
    query_ids = encoded["input_ids"].repeat_interleave(settings.num_samples, dim=0)
    query_mask = encoded["attention_mask"].repeat_interleave(settings.num_samples, dim=0)
    response_ids, response_mask, has_eos = truncate_after_eos(
        output[:, prompt_len:], tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    return Generations(
        prompts=[text for text in texts for _ in range(settings.num_samples)],
        texts=tokenizer.batch_decode(response_ids, skip_special_tokens=True),
        token_counts=response_mask.sum(dim=1).tolist(),
        prompt_indices=[
            first_index + i for i in range(len(texts)) for _ in range(settings.num_samples)
        ],
        has_eos=has_eos.tolist(),
        query_ids=query_ids,
        query_mask=query_mask,
        response_ids=response_ids,
        response_mask=response_mask,
    )


def truncate_after_eos(
    response_ids: torch.Tensor, eos_token_id: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep tokens through the first EOS; later ones become padding with mask 0.

    Returns (ids, mask, has_eos). A response without EOS keeps all its tokens (mask 1 everywhere).
    """
    is_eos = response_ids == eos_token_id
    has_eos = is_eos.any(dim=1)
    # Tokens strictly after the first EOS: those with an EOS earlier in the row.
    eos_before = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    mask = (~eos_before).long()
    ids = response_ids.masked_fill(eos_before, pad_token_id)
    return ids, mask, has_eos


def _left_pad(tensor: torch.Tensor, width: int, value: int) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing == 0:
        return tensor
    return torch.nn.functional.pad(tensor, (missing, 0), value=value)


def _right_pad(tensor: torch.Tensor, width: int, value: int) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing == 0:
        return tensor
    return torch.nn.functional.pad(tensor, (0, missing), value=value)


def _concatenate(pieces: list[Generations], pad_token_id: int) -> Generations:
    if len(pieces) == 1:
        return pieces[0]
    query_width = max(p.query_ids.shape[1] for p in pieces)
    response_width = max(p.response_ids.shape[1] for p in pieces)
    return Generations(
        prompts=[t for p in pieces for t in p.prompts],
        texts=[t for p in pieces for t in p.texts],
        token_counts=[c for p in pieces for c in p.token_counts],
        prompt_indices=[i for p in pieces for i in p.prompt_indices],
        has_eos=[e for p in pieces for e in p.has_eos],
        query_ids=torch.cat([_left_pad(p.query_ids, query_width, pad_token_id) for p in pieces]),
        query_mask=torch.cat([_left_pad(p.query_mask, query_width, 0) for p in pieces]),
        response_ids=torch.cat(
            [_right_pad(p.response_ids, response_width, pad_token_id) for p in pieces]
        ),
        response_mask=torch.cat([_right_pad(p.response_mask, response_width, 0) for p in pieces]),
    )
