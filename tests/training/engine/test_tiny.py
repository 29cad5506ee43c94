"""The offline tiny model: loadable like a hub model, sensible tokens, pretrained into words."""

from transformers import AutoModelForCausalLM, AutoTokenizer

from training.engine.config import GenerationSettings
from training.engine.generation import generate
from training.engine.tiny import SUBJECTS, VERBS, build_tiny_model, demo_prompts


def test_tiny_model_loads_with_from_pretrained_and_has_distinct_special_tokens(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    assert len(ids) == 3
    assert 200 <= len(tokenizer) <= 600
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|user|>hi<|assistant|>"
    text = "the cat likes warm bread ."
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_pretrained_tiny_model_answers_in_corpus_words_and_stops(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [[{"role": "user", "content": p}] for p in demo_prompts()[::4]]
    out = generate(
        model, tokenizer, prompts, GenerationSettings(max_new_tokens=24, temperature=0.7)
    )
    starts_with_subject = sum(any(t.startswith(s) for s in SUBJECTS) for t in out.texts)
    has_verb = sum(any(f" {v} " in t for v in VERBS) for t in out.texts)
    assert starts_with_subject >= 0.7 * len(out)
    assert has_verb >= 0.7 * len(out)
    assert sum(out.has_eos) >= 0.7 * len(out)


def test_untrained_tiny_model_from_custom_corpus(tmp_path):
    corpus = ["alpha beta gamma", "beta gamma delta", "gamma delta alpha"] * 5
    path = build_tiny_model(tmp_path / "raw", corpus=corpus, pretrain_steps=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.decode(tokenizer("alpha beta", add_special_tokens=False)["input_ids"]) == (
        "alpha beta"
    )
    assert AutoModelForCausalLM.from_pretrained(path).config.vocab_size == len(tokenizer)
