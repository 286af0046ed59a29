#!/usr/bin/env bash
# The GPU recipe in one call (what it does: tools/gpu_recipe.py): bash tools/gpu_recipe.sh MINUTES [options]
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
PYTHONPATH=. exec "$python" tools/gpu_recipe.py "$@"
