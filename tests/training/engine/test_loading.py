"""Base-model loading: CPU falls back to plain LoRA, pad differs from EOS, reward heads stay whole."""

import logging

from peft import get_peft_model
from transformers import AutoTokenizer

from training.engine.config import LoraSettings
from training.engine.loading import (
    build_lora_config,
    is_quantized,
    load_base_model,
    load_tokenizer,
    resolve_quantize,
)


def test_cpu_loads_plain_lora_and_says_so(tiny_model_dir, caplog):
    with caplog.at_level(logging.INFO, logger="training.engine.loading"):
        model = load_base_model(tiny_model_dir, quantize=True)
    assert not is_quantized(model)
    assert resolve_quantize(None) is False
    assert any("No CUDA" in message for message in caplog.messages)


def test_tokenizer_that_pads_with_eos_gets_a_distinct_pad(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(tmp_path)
    fixed = load_tokenizer(str(tmp_path))
    assert fixed.pad_token_id != fixed.eos_token_id
    assert fixed.padding_side == "left"


def test_lora_targets_all_linear_layers_and_reward_head_is_saved_whole(tiny_model_dir):
    settings = LoraSettings(rank=4, alpha=8, dropout=0.0)
    policy = get_peft_model(load_base_model(tiny_model_dir), build_lora_config(settings))
    wrapped = {
        name.rsplit(".", 2)[-2] for name, _ in policy.named_modules() if name.endswith("lora_A")
    }
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("lm_head.lora" in name for name, _ in policy.named_parameters())

    reward = get_peft_model(
        load_base_model(tiny_model_dir, kind="reward"), build_lora_config(settings, kind="reward")
    )
    trainable = [name for name, p in reward.named_parameters() if p.requires_grad]
    assert any("score.modules_to_save" in name for name in trainable)
    assert not any("score.lora" in name for name in trainable)
