#!/usr/bin/env bash
# Train shipped checkpoints on the real MNIST, one CPU thread each, in the background:
#   DRAW_DATA_DIR=../shared/data bash tools/pretrain.sh mnist:100 mnist-noattn:105 mnist-small:12
# (preset:minutes pairs). Resumable: RESUME=--resume continues from artifacts/<preset>.safetensors.
# Exits non-zero when any run failed (its log: artifacts/<preset>.log).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p artifacts
pids=()
for job in "$@"; do
  preset=${job%%:*} minutes=${job##*:}
  nohup "$PYTHON" -m draw_core.train --preset "$preset" --time-budget "$minutes" --out "artifacts/$preset.safetensors" \
    --data-dir "${DRAW_DATA_DIR:-data}" --batch-size 64 --steps 1000000 --lr 1e-3 --threads 1 \
    --eval-every 2000 --eval-limit 1000 --checkpoint-every 500 ${RESUME:-} > "artifacts/$preset.log" 2>&1 &
  pids+=("$!")
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "pretrain: ${@:i+1:1} failed (see its log in artifacts/)" >&2
    status=1
  fi
done
exit "$status"
