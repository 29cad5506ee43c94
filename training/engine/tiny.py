"""A tiny Llama and tokenizer built offline, for tests and the demo.

`build_tiny_model` trains a byte-level BPE tokenizer of a few hundred tokens on a small corpus, builds a
2-layer Llama (hidden size 64) and, by default, pretrains it for a few hundred steps so that its samples
are words rather than noise. The result is a directory that `from_pretrained` loads like any hub model.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<s>", "</s>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

# Each message is its role marker then its content; assistant turns end with EOS, which is what
# teaches the model to stop and what PPO's missing-EOS penalty looks for.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

SUBJECTS = [
    "the cat",
    "the dog",
    "a bird",
    "my friend",
    "the child",
    "the farmer",
    "a robot",
    "the teacher",
]
VERBS = ["likes", "sees", "paints", "finds", "wants", "draws", "makes", "holds"]
OBJECTS = [
    "a red apple",
    "the blue sky",
    "a green tree",
    "the big house",
    "a small boat",
    "warm bread",
    "cold water",
    "a yellow flower",
]
PROMPT_FORMS = ["tell me about {s}", "what does {s} do", "say something about {s}", "describe {s}"]


def demo_prompts() -> list[str]:
    """The user prompts the demo model was pretrained to answer, one per subject and form."""
    return [form.format(s=subject) for subject in SUBJECTS for form in PROMPT_FORMS]


def demo_conversations(count: int = 512, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, response) pairs: the response is a short sentence about the prompt's subject."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        subject = rng.choice(SUBJECTS)
        prompt = rng.choice(PROMPT_FORMS).format(s=subject)
        sentence = f"{subject} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if rng.random() < 0.5:
            sentence += f" and {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        pairs.append((prompt, sentence + " ."))
    return pairs


def build_tiny_tokenizer(texts: list[str], vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """Byte-level BPE (so any text round-trips) with distinct pad/bos/eos and a chat template."""
    special = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=ROLE_TOKENS,
        padding_side="left",
        model_max_length=256,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def tiny_llama_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int = 64) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def build_tiny_model(
    path: str | Path,
    corpus: list[str] | None = None,
    seed: int = 0,
    pretrain_steps: int = 200,
) -> Path:
    """Save a tiny Llama and its tokenizer to `path` and return it.

    Without `corpus` the model is pretrained on `demo_conversations()` rendered with the chat template,
    so it answers `demo_prompts()` with short sentences ending in EOS. With `corpus`, on those texts.
    `pretrain_steps=0` leaves the weights random.
    """
    path = Path(path)
    torch.manual_seed(seed)
    if corpus is None:
        tokenizer = build_tiny_tokenizer([p + " " + r for p, r in demo_conversations(seed=seed)])
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                tokenize=False,
            )
            for p, r in demo_conversations(seed=seed)
        ]
    else:
        tokenizer = build_tiny_tokenizer(corpus)
        texts = [text + EOS_TOKEN for text in corpus]
    model = LlamaForCausalLM(tiny_llama_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    if pretrain_steps > 0:
        pretrain(model, tokenizer, texts, steps=pretrain_steps, seed=seed)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def pretrain(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    texts: list[str],
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
) -> float:
    """Next-token training on `texts`; returns the final loss. A few seconds on two CPU cores."""
    started = time.perf_counter()
    # Matrices this small gain nothing from threads, and OpenMP threads spin badly when other
    # processes share the cores (measured: 5x slower with two threads on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loss = _pretrain_steps(model, tokenizer, texts, steps, seed, batch_size, learning_rate)
    finally:
        torch.set_num_threads(threads)
    logger.info(
        "Pretrained the tiny model for %d steps in %.1fs (loss %.3f).",
        steps,
        time.perf_counter() - started,
        loss,
    )
    return loss


def _pretrain_steps(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    texts: list[str],
    steps: int,
    seed: int,
    batch_size: int,
    learning_rate: float,
) -> float:
    encoded = tokenizer(texts, padding=False, truncation=True, max_length=64)["input_ids"]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 - step / max(steps, 1)
    )
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        picks = torch.randint(len(encoded), (batch_size,), generator=generator).tolist()
        batch = [encoded[i] for i in picks]
        width = max(len(ids) for ids in batch)
        # Right-padded for training; labels ignore the padding.
        input_ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        attention_mask = torch.zeros((batch_size, width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return loss.item()
