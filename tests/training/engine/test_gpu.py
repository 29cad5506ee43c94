"""The CUDA path: 4-bit NF4 QLoRA loading, a QLoRA reward run and PPO steps, the memory probe, and
the merged sampler decoding with a compiled static cache.

Skipped without CUDA; run on a GPU machine with `python -m pytest -m gpu tests/training/engine`.
"""

import pytest
import torch
from peft import get_peft_model
from peft.tuners.lora import LoraLayer

from training.engine.batch_plan import choose_batch_plan
from training.engine.config import GenerationSettings, LoraSettings, PPORunConfig, RewardRunConfig
from training.engine.loading import (
    build_lora_config,
    is_quantized,
    load_base_model,
    load_tokenizer,
    prepare_for_training,
)
from training.engine.ppo import train_ppo
from training.engine.reward import load_reward_model, train_reward_model
from training.engine.sampler import MergedSampler
from training.engine.tiny import demo_prompts

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_loads_4bit_nf4_with_bf16_compute_and_full_precision_heads(tiny_model_dir):
    import bitsandbytes as bnb

    model = load_base_model(tiny_model_dir)
    assert is_quantized(model)
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.quant_type == "nf4"
    assert q_proj.weight.quant_state.nested  # double quantization
    assert q_proj.compute_dtype == torch.bfloat16
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)

    reward_base = load_base_model(tiny_model_dir, kind="reward")
    assert not isinstance(reward_base.score, bnb.nn.Linear4bit)


def test_qlora_reward_model_trains_saves_and_loads(tiny_model_dir, tmp_path, preference_pairs):
    result = train_reward_model(
        RewardRunConfig(
            base_model=tiny_model_dir,
            learning_rate=3e-3,
            batch_size=16,
            gradient_accumulation_steps=1,
            eval_fraction=0.25,
            max_length=64,
            lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
        ),
        preference_pairs(160),
        tmp_path,
    )
    assert result.final_metrics["eval_accuracy"] >= 0.8
    assert result.final_metrics["gpu_memory_gb"] > 0
    reward_model = load_reward_model(result.adapter_dir)
    assert is_quantized(reward_model.model.get_base_model())


def test_qlora_ppo_steps_run(tiny_model_dir, tmp_path):
    prompts = [[{"role": "user", "content": p}] for p in demo_prompts()]
    result = train_ppo(
        PPORunConfig(
            base_model=tiny_model_dir,
            learning_rate=3e-3,
            total_steps=3,
            prompts_per_step=16,
            generation=GenerationSettings(max_new_tokens=16),
            lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
        ),
        prompts,
        tmp_path,
        reward_fn=lambda texts: [float("blue" in t) for t in texts],
    )
    assert result.final_metrics["gpu_memory_gb"] > 0
    assert (result.adapter_dir / "adapter_model.safetensors").exists()


def test_memory_probe_plans_a_batch_that_fits(tiny_model_dir):
    model = load_base_model(tiny_model_dir, quantize=False)
    plan = choose_batch_plan(model, seq_len=128, target_batch_size=32)
    free, _ = torch.cuda.mem_get_info()
    assert 1 <= plan.micro_batch_size <= 32
    assert plan.micro_batch_size * plan.gradient_accumulation_steps >= 32
    assert plan.predicted_peak_gb * 2**30 < free + torch.cuda.memory_allocated()


def test_merged_sampler_matches_the_4bit_policy_and_decodes_with_a_static_cache(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    base = prepare_for_training(
        load_base_model(tiny_model_dir, tokenizer=tokenizer), gradient_checkpointing=False
    )
    lora = build_lora_config(LoraSettings(rank=8, alpha=16, dropout=0.0))
    model = get_peft_model(base, lora, adapter_name="policy").eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    sampler = MergedSampler(model, "policy")
    ids = tokenizer(demo_prompts()[:4], return_tensors="pt", padding=True)["input_ids"].cuda()
    mask = torch.ones_like(ids)
    with torch.no_grad():
        policy = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        with model.disable_adapter():
            base_logp = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        merged = sampler.model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)

    def kl(p, q):
        return (p.exp() * (p - q)).sum(-1).mean().item()

    # The copy is the dequantized 4-bit weights plus the adapter: bf16 rounding away from the policy,
    # much closer to it than the policy is to its base.
    assert kl(policy, merged) < 0.1 * kl(policy, base_logp)
    prompts = [[{"role": "user", "content": p}] for p in demo_prompts()[:8]]
    out = sampler.generate(tokenizer, prompts, GenerationSettings(max_new_tokens=12))
    assert len(out.texts) == 8
    assert all(1 <= n <= 12 for n in out.token_counts)


def test_fused_kernels_match_transformers_forward_and_backward(tiny_model_dir):
    from training.engine.kernels import fuse_kernels

    plain = load_base_model(tiny_model_dir, quantize=False)
    fused = load_base_model(tiny_model_dir, quantize=False)
    assert fuse_kernels(fused, True) == 3 * len(fused.model.layers) + 1
    ids = torch.randint(3, 200, (4, 48), device="cuda")
    outputs = []
    for model in (plain, fused):
        model.train()
        logits = model(input_ids=ids).logits.float()
        logits.logsumexp(-1).mean().backward()
        layer = model.model.layers[0]
        outputs.append(
            (logits, layer.post_attention_layernorm.weight.grad, layer.mlp.gate_proj.weight.grad)
        )
    for expected, actual in zip(*outputs, strict=True):
        torch.testing.assert_close(actual.float(), expected.float(), rtol=0.05, atol=0.05)


def test_fused_lora_matches_peft_on_4bit_layers_under_bf16_autocast(tiny_model_dir):
    from training.engine.kernels import fuse_lora

    lora = build_lora_config(LoraSettings(rank=8, alpha=16, dropout=0.0))
    ids = torch.randint(3, 200, (4, 48), device="cuda")
    outputs = []
    for fused in (False, True):
        torch.manual_seed(0)
        base = prepare_for_training(load_base_model(tiny_model_dir), gradient_checkpointing=False)
        model = get_peft_model(base, lora)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.05)
        layers = sum(isinstance(m, LoraLayer) for m in model.modules())
        assert fuse_lora(model, fused) == (layers if fused else 0)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=ids).logits.float()
        logits.logsumexp(-1).mean().backward()
        q_proj = base.model.layers[0].self_attn.q_proj
        outputs.append((logits, q_proj.lora_A["default"].weight.grad))
    for expected, actual in zip(*outputs, strict=True):
        torch.testing.assert_close(actual.float(), expected.float(), rtol=0.05, atol=0.05)
