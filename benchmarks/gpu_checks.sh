#!/usr/bin/env bash
# Everything the GPU machine is for, in one go: the CUDA tests, then the engine benchmark in stages,
# each under its own time limit so that one slow or failing stage leaves the others' figures.
# Usage (on the GPU box, after installing .whl/ as ../shared/gpu/README.md says):
#   OUT=var/gpu benchmarks/gpu_checks.sh [stage ...]      stages: tests pairwise generation ppo profile trainer
set -u
out=${OUT:-var/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1
work=${ENGINE_BENCH_WORKDIR:-/tmp/engine-bench}
bench=(python3 benchmarks/engine_throughput.py --workdir "$work" --steps 6 --ppo-steps 3)

stage() {
  local name=$1 limit=$2 started=$SECONDS
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - started))s"
  grep -E "^(reward|dpo|ppo|generation|step|lora|qlora)[ ,]|%  |passed|failed|Error|GPU idle|  [0-9.]+ ms  " "$out/$name.log" | tail -16
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests pairwise generation ppo)
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
for s in "${stages[@]}"; do
  case $s in
    # --confcutdir keeps the Django conftest above out: the engine's tests need no Django.
    tests) stage tests 100 python3 -m pytest -q -m gpu -p no:django -p no:cacheprovider \
      --confcutdir=tests/training/engine tests/training/engine/test_gpu.py ;;
    # Each engine run also without the fused kernels and at batch 64, beside TRL's defaults.
    pairwise) stage pairwise 230 "${bench[@]}" --modes qlora,lora --parts reward,dpo \
      --engine-variant fused_kernels=false --engine-variant batch_size=64 \
      --out "$out/pairwise.json" ;;
    generation) stage generation 160 "${bench[@]}" --modes qlora --parts generation \
      --out "$out/generation.json" ;;
    # GPU kernel time of one bf16-LoRA reward step, by group, with and without the fused kernels
    # (Liger and LoRA addmm).
    profile) stage profile 120 sh -c "python3 benchmarks/profile_reward_step.py --workdir $work && \
      python3 benchmarks/profile_reward_step.py --workdir $work --unfused --top 8" ;;
    # Whole Trainer steps of the bf16-LoRA reward model: where the CPU was while the GPU waited.
    trainer) stage trainer 120 python3 benchmarks/profile_trainer_step.py --workdir "$work" ;;
    ppo) stage ppo 230 "${bench[@]}" --modes qlora,lora --parts ppo-adapter,ppo-merged \
      --out "$out/ppo.json" ;;
  esac
done
