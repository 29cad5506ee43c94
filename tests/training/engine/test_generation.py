"""Batched sampling: prompt rendering, left padding, n samples per prompt, EOS truncation."""

import torch
from transformers import AutoModelForCausalLM

from training.engine.config import GenerationSettings
from training.engine.generation import encode_prompts, generate, render_prompt, truncate_after_eos
from training.engine.loading import load_tokenizer


def test_render_prompt_uses_chat_template_or_plain_fallback(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert render_prompt(tokenizer, chat) == "<|system|>be brief<|user|>hi<|assistant|>"
    assert render_prompt(tokenizer, "plain text") == "plain text"
    tokenizer.chat_template = None
    assert render_prompt(tokenizer, chat) == "System: be brief\nUser: hi\nAssistant:"


def test_prompts_are_left_padded_with_bos_once(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    encoded = encode_prompts(
        tokenizer, ["<|user|>hi<|assistant|>", "<|user|>tell me about the cat"]
    )
    assert encoded["attention_mask"][0, 0] == 0 and encoded["attention_mask"][1, 0] == 1
    first_real = encoded["input_ids"][0][encoded["attention_mask"][0].bool()]
    assert first_real[0] == tokenizer.bos_token_id
    assert (encoded["input_ids"] == tokenizer.bos_token_id).sum() == 2


def test_truncate_after_eos_keeps_eos_and_pads_the_rest():
    # eos = 2, pad = 0
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    kept, mask, has_eos = truncate_after_eos(ids, eos_token_id=2, pad_token_id=0)
    assert kept.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert has_eos.tolist() == [True, False]


def test_generate_returns_n_samples_per_prompt_across_batches(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [
        [{"role": "user", "content": "tell me about the cat"}],
        "<|user|>describe a robot and what it does all day long<|assistant|>",
        [{"role": "user", "content": "describe the dog"}],
    ]
    settings = GenerationSettings(max_new_tokens=6, num_samples=2, batch_size=2, top_k=20)
    out = generate(model, tokenizer, prompts, settings)
    assert len(out) == 6
    assert out.prompt_indices == [0, 0, 1, 1, 2, 2]
    assert out.query_ids.shape[0] == out.response_ids.shape[0] == 6
    assert out.response_ids.shape[1] <= 6
    assert out.token_counts == out.response_mask.sum(dim=1).tolist()
    for row, has_eos in enumerate(out.has_eos):
        real = out.response_ids[row][out.response_mask[row].bool()]
        assert (real[-1] == tokenizer.eos_token_id) == has_eos
        assert (real == tokenizer.pad_token_id).sum() == 0
    # Rows from both batches share one left-padded width: the long prompt sets it.
    assert out.query_mask[0, 0] == 0 and out.query_mask[2, 0] == 1


def repeats_a_token(generations) -> bool:
    return any(
        len(set(real)) < len(real)
        for row, mask in zip(generations.response_ids, generations.response_mask, strict=True)
        if (real := row[mask.bool()].tolist())
    )


def test_sampling_ignores_settings_shipped_with_the_model(tiny_model_dir):
    """A model's generation_config.json may carry a repetition penalty and the like, which would
    reshape what is sampled behind the settings' back (and PPO's log-probs): the same seed gives
    the same samples with or without them, and the shipped config is left as it was."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [[{"role": "user", "content": "tell me about the cat"}]] * 3
    settings = GenerationSettings(max_new_tokens=16, num_samples=4)

    def sampled():
        torch.manual_seed(7)
        return generate(model, tokenizer, prompts, settings)

    plain = sampled()
    assert repeats_a_token(plain)
    model.generation_config.no_repeat_ngram_size = 1  # no token twice in a response
    model.generation_config.repetition_penalty = 3.0
    shaped = sampled()
    assert shaped.response_ids.tolist() == plain.response_ids.tolist()
    assert model.generation_config.no_repeat_ngram_size == 1
    # What the guard keeps out: transformers applies the shipped settings to a call that does
    # not set them.
    torch.manual_seed(7)
    encoded = encode_prompts(tokenizer, [render_prompt(tokenizer, p) for p in prompts])
    output = model.generate(**encoded, do_sample=True, max_new_tokens=16)
    ids, mask, _ = truncate_after_eos(
        output[:, encoded["input_ids"].shape[1] :], tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    assert all(
        len(set(real)) == len(real)
        for real in (r[m.bool()].tolist() for r, m in zip(ids, mask, strict=True))
    )


def test_dpo_prompts_tokenize_to_the_ids_sampling_sees(tiny_model_dir):
    """A chat template that writes BOS itself (Llama 3's, Mistral's): TRL tokenizes DPO's
    prompts with special tokens, which would add a second BOS."""
    from training.engine.dpo import _dpo_columns
    from training.engine.examples import PreferencePair

    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    prompt = [{"role": "user", "content": "tell me about the cat"}]
    rendered = render_prompt(tokenizer, prompt)
    assert rendered.startswith(tokenizer.bos_token)
    sampled = encode_prompts(tokenizer, [rendered])["input_ids"][0].tolist()
    assert sampled.count(tokenizer.bos_token_id) == 1
    [text] = _dpo_columns(tokenizer, [PreferencePair(prompt=prompt, chosen="a", rejected="b")])[
        "prompt"
    ]
    assert tokenizer(text=text)["input_ids"] == sampled  # as TRL's DPO tokenizes it
    # A template without BOS is left as rendered.
    plain = load_tokenizer(tiny_model_dir)
    [text] = _dpo_columns(plain, [PreferencePair(prompt=prompt, chosen="a", rejected="b")])[
        "prompt"
    ]
    assert text == render_prompt(plain, prompt)
    assert plain(text=text)["input_ids"] == encode_prompts(plain, [text])["input_ids"][0].tolist()
