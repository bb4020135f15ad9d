#!/usr/bin/env bash
# Install imhi-bench and its dev tools into ./.venv.
# torch==2.13.0 (CPU build) goes in first so that no dependency pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "installed: $(.venv/bin/imhi-bench --version)"
