#!/usr/bin/env bash
# The checks only a CUDA GPU can make, in one go (about 22 minutes on an H100): the test suite's GPU cases (the
# Triton kernel in bfloat16, the planner against torch.cuda.max_memory_allocated), the kernel's tile tuning, attention
# speed against SDPA, the 24 GB presets trained for real, and the shapes64 preset's step profiled and its whole run
# (clips, VAE, DiT, samples, scores) scaled to 6 minutes, and the DiT paper's DiT-XL/2 sampled (random weights) in
# float32 and bfloat16. Logs go to ${OUT:-benchmarks/out}/.
#     bash benchmarks/run_gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-benchmarks/out}
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the benchmarks import minisora from here
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOGS/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$LOGS/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_attention_kernels.py tests/test_memory_planner.py tests/test_randomness.py \
    tests/test_mixed_precision.py tests/test_pretrained.py 2>&1 | tee "$LOGS/gpu_tests.txt" | tail -n 15
python3 benchmarks/attention_kernel_tuning.py 2>&1 | tee "$LOGS/attention_kernel_tuning.txt" | tail -n 8
python3 benchmarks/attention_speed_memory.py --gpu-only 2>&1 | tee "$LOGS/attention_speed_gpu.txt" | tail -n 10
python3 benchmarks/gpu_memory_presets.py 2>&1 | tee "$LOGS/gpu_memory_presets.txt"
python3 benchmarks/training_step_profile.py --preset shapes64 --against optimizer=adamw attention_backend=sdpa 2>&1 \
    | tee "$LOGS/shapes64_profile.txt" | tail -n 30
python3 benchmarks/gpu_preset_run.py --preset shapes64 --budget 370 --num_clips=6000 --vae_steps=1000 \
    --out "$LOGS/shapes64_run" 2>&1 | tee "$LOGS/shapes64_run.txt" | tail -n 12
for run in "fp32 25 dpmpp_2m" "bf16 25 dpmpp_2m" "bf16 250 ddpm_learned_variance"; do
    set -- $run
    python3 benchmarks/dit_xl_sampling.py --device cuda --threads 16 --images 8 --precision "$1" --steps "$2" \
        --sampler "$3" 2>&1 | tee "$LOGS/dit_xl_sampling_$1_$2.txt" | tail -n 6
done
