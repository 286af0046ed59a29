#!/usr/bin/env bash
# Train shipped checkpoints on the real MNIST, one CPU thread each, in the background:
#   DRAW_DATA_DIR=../shared/data bash tools/pretrain.sh mnist:100 mnist-noattn:105 mnist-small:12
# (preset:minutes pairs). Resumable: RESUME=--resume continues from artifacts/<preset>.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
for job in "$@"; do
  preset=${job%%:*} minutes=${job##*:}
  nohup python -m draw_core.train --preset "$preset" --time-budget "$minutes" --out "artifacts/$preset.safetensors" \
    --data-dir "${DRAW_DATA_DIR:-data}" --batch-size 64 --steps 1000000 --lr 1e-3 --threads 1 \
    --eval-every 2000 --eval-limit 1000 --checkpoint-every 500 ${RESUME:-} > "artifacts/$preset.log" 2>&1 &
done
wait
