#!/usr/bin/env bash
# The toolkit's checks on a GPU, in one go (a few minutes on one H100/H200):
#   1. the trainer tests with VR_TEST_DEVICE=cuda (every VR trainer's training loop, PRM, checkpoints on CUDA);
#   1b. tests/test_trainers_registry.py with VR_TEST_DEVICE=cuda: EVERY registered trainer trains, saves and
#      reloads bit-identically on the GPU under fp16 autocast, bf16 (where offered) and fp32 (docs/tests.md);
#   2. benchmarks/bench.py --device cuda: throughput, DVP batched vs sequential (ViT-B/16, v = 3, batch 16 / 64),
#      peak GPU memory, precision modes;
#   3. the end-to-end DVP_CLS protocol on the GPU against the reference-style loop (ViT-B/16, random weights).
# (about 8 minutes on an H100; benchmarks/README.md's GPU tables came from these steps)
# Usage: bash benchmarks/cuda_check.sh [OUT_DIR]   (logs and json files go to OUT_DIR, default output/cuda_check)
set -o pipefail
cd "$(dirname "$0")/.."
out=${1:-output/cuda_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
status=0
VR_TEST_DEVICE=cuda timeout "${CUDA_TESTS_TIMEOUT:-150}" python3 -m pytest -q -p no:cacheprovider \
    tests/test_trainers_vr.py tests/test_trainer_coop.py tests/test_vr_model.py tests/test_speed_exact.py 2>&1 | tee "$out/tests_cuda.log" || status=1
VR_TEST_DEVICE=cuda timeout "${CUDA_REGISTRY_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider \
    tests/test_trainers_registry.py 2>&1 | tee "$out/tests_registry_cuda.log" || status=1
timeout "${CUDA_BENCH_TIMEOUT:-240}" python3 benchmarks/bench.py --device cuda --parts throughput,dvp,precision \
    --workdir /tmp/vr_bench --json "$out/bench_cuda.json" 2>&1 | tee "$out/bench_cuda.log" || status=1
timeout "${CUDA_E2E_TIMEOUT:-400}" python3 benchmarks/bench.py --device cuda --parts e2e --e2e-backbone ViT-B/16 \
    --e2e-epochs "${CUDA_E2E_EPOCHS:-20}" --workdir /tmp/vr_bench --json "$out/bench_cuda_e2e.json" 2>&1 \
    | tee "$out/bench_cuda_e2e.log" || status=1
exit $status
