#!/usr/bin/env bash
# Install imhi-bench and its dev tools.
#
#   bash scripts/install.sh                # ./.venv: CPU torch 2.13.0 first (so that no
#                                          # dependency pulls a CUDA build), then .[dev]
#   bash scripts/install.sh --gpu          # ./.venv on a CUDA machine: the GPU set
#                                          # (constraints/gpu.txt: vLLM, PyPI's CUDA torch),
#                                          # .[dev,vllm], then flash-attn built from source
#   bash scripts/install.sh --gpu-set-cpu  # ./.venv-gpuset: the GPU set's libraries on the
#                                          # CPU torch, without its "gpu-only" lines (vLLM,
#                                          # flash-attn); CI runs the tests here as well
#
# NO_FLASH=1 skips flash-attn's build in --gpu (it compiles for a long time; README).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
mode=${1:-}
case $mode in
  "") venv=.venv ;;
  --gpu) venv=.venv ;;
  --gpu-set-cpu) venv=.venv-gpuset ;;
  *) echo "usage: bash scripts/install.sh [--gpu | --gpu-set-cpu]" >&2; exit 2 ;;
esac
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
case $mode in
  "")
    "${pip[@]}" "torch==2.13.0"
    "${pip[@]}" -e ".[dev]"
    ;;
  --gpu)
    "${pip[@]}" -c constraints/gpu.txt -e ".[dev,vllm]"
    if [[ ${NO_FLASH:-0} != 1 ]]; then
      # flash-attn's setup.py imports torch, so it builds against the one just installed
      "${pip[@]}" -c constraints/gpu.txt ninja packaging psutil wheel
      MAX_JOBS=${MAX_JOBS:-4} "${pip[@]}" -c constraints/gpu.txt --no-build-isolation flash-attn
    fi
    ;;
  --gpu-set-cpu)
    cpu_set=$(mktemp)
    trap 'rm -f "$cpu_set"' EXIT
    grep -v 'gpu-only' constraints/gpu.txt >"$cpu_set"
    "${pip[@]}" -c "$cpu_set" "torch==2.13.0"
    "${pip[@]}" -c "$cpu_set" -e ".[dev]"
    ;;
esac
echo "installed into $venv: $("$venv/bin/imhi-bench" --version)"
