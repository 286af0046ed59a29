#!/usr/bin/env bash
# Train the shipped checkpoints on the real MNIST (one CPU thread each, in the background).
# Resumable: run it again with RESUME=--resume to continue from artifacts/<name>.safetensors.
#   DRAW_DATA_DIR=../shared/data bash tools/pretrain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
common=(--data-dir "${DRAW_DATA_DIR:-data}" --batch-size 64 --steps 1000000 --lr 1e-3 --threads 1
        --eval-every 2000 --eval-limit 1000 --checkpoint-every 500 ${RESUME:-})
nohup python -m draw_core.train --preset mnist --time-budget "${MNIST_MINUTES:-115}" \
  --out artifacts/mnist.safetensors "${common[@]}" > artifacts/mnist.log 2>&1 &
nohup python -m draw_core.train --preset mnist-noattn --time-budget "${NOATTN_MINUTES:-105}" \
  --out artifacts/mnist-noattn.safetensors "${common[@]}" > artifacts/mnist-noattn.log 2>&1 &
nohup python -m draw_core.train --preset mnist-small --time-budget "${SMALL_MINUTES:-12}" \
  --out artifacts/mnist-small.safetensors "${common[@]}" > artifacts/mnist-small.log 2>&1 &
wait
