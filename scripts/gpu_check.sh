#!/usr/bin/env bash
# GPU check of `imhi-bench train` and `eval`, for when a GPU machine is lent (issue 12).
#
#   bash scripts/gpu_check.sh            # on the GPU machine, from any folder
#   bash scripts/gpu_check.sh prepare    # beforehand, on a machine with PyPI (see below)
#
# On a machine without a visible CUDA GPU it prints "no GPU: nothing to check" and exits 0.
# Otherwise, on a tiny random Llama (tests/tiny_models.py) and the DR train/test data:
#   1. 30 bf16 training steps with SDPA attention, batching=group_by_length;
#   2. 30 bf16 steps with flash-attention 2 and batching=padding_free, if flash_attn
#      imports (else it says it did not run);
#   3. `imhi-bench eval --tasks imhi_dr --limit 8` of each trained model on CUDA.
# It checks what the training cards say (bf16, the attention, the batching, 30 steps), and
# writes a summary (versions, what ran, times, tokens/s from TRL's token count) to
# $OUT/gpu_check.txt when OUT is set (else to the work folder it prints), with the logs of
# each step beside it.  Any error stops it with a non-zero exit and the failing step's log.
#
# Python: $PYTHON if set; else the first of .venv/bin/python, python3 that already has a
# CUDA torch, trl, lm-eval and the repo importable; else python3's CUDA torch plus the
# wheels in build/gpu_check/whl (installed into /tmp with --no-index --no-deps); else a
# new .venv-gpu with the GPU set (`pip install -c constraints/gpu.txt -e .[dev]`: PyPI's
# CUDA torch 2.13.0, transformers 5.19.0, ...).  The lent H200 machines reach no network
# but ship a CUDA torch in python3, so there the wheels route is the one that works: run
# `bash scripts/gpu_check.sh prepare` here first (it downloads, for CPython 3.12 manylinux
# x86-64, the GPU set's versions of our dependencies that image lacks or holds in an older
# version, read from .venv-gpuset, which it builds if missing, and copies the DR data,
# into build/gpu_check, which .gitignore ignores), then carry it:
#   run(command="bash scripts/gpu_check.sh", carry=["build/gpu_check"], timeout_s=600)
# Data: $IMHI_DATA_DIR, else ../shared/imhi, else build/gpu_check/imhi.
# GPU_CHECK_ON_CPU=1 runs every step on the CPU instead (fp32): a test of this script only.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=$ROOT/build/gpu_check
STEPS=30

# ------------------------------------------------------------------ prepare (dev box)
if [[ "${1:-}" == prepare ]]; then
  # the GPU set's library versions (constraints/gpu.txt), as .venv-gpuset holds them
  [[ -n ${PYTHON:-} || -x $ROOT/.venv-gpuset/bin/python ]] ||
    bash "$ROOT/scripts/install.sh" --gpu-set-cpu
  py=${PYTHON:-$ROOT/.venv-gpuset/bin/python}
  data=${IMHI_DATA_DIR:-$ROOT/../shared/imhi}
  rm -rf "$CARRY" && mkdir -p "$CARRY/whl"
  # Our dependency closure as installed there (core + train extra), less what the
  # device image ships (its package list in the device notes, 2026-11-17), except those
  # whose version there is older than our pins (transformers 5.17) or unknown and matters.
  "$py" - "$ROOT/pyproject.toml" >"$CARRY/requirements.txt" <<'EOF'
import importlib.metadata as md, re, sys, tomllib
from packaging.requirements import Requirement
IMAGE = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx humanize huggingface-hub
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl
meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime
onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint
packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels
sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect
urllib3 uvloop wadler-lindig werkzeug wheel xarray xxhash yarl zipp""".split())
FORCE = {"transformers", "trl", "peft", "fsspec"}  # image: transformers 5.17, pins here
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
todo = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["train"]]
seen = {}
while todo:
    req = todo.pop()
    name = norm(req.name)
    if name in seen or name == "torch" or name.startswith("nvidia-"):
        continue
    dist = md.distribution(name)
    seen[name] = dist.version
    if name in IMAGE and name not in FORCE:
        continue  # the image's own copy brings what it needs
    for r in map(Requirement, dist.requires or []):
        if r.marker is None or r.marker.evaluate({"extra": ""}) or any(
                r.marker.evaluate({"extra": e}) for e in req.extras):
            todo.append(r)
for name in sorted(seen):
    if name not in IMAGE or name in FORCE:
        print(f"{name}=={seen[name]}")
EOF
  plat=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64; do plat+=(--platform "$p"); done
  while read -r req; do
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${plat[@]}" -d "$CARRY/whl" "$req" 2>>"$CARRY/download.log" ||
      "$py" -m pip download -q --no-deps -d "$CARRY/whl" "$req" 2>>"$CARRY/download.log" ||
      { tail -n 20 "$CARRY/download.log" >&2; echo "prepare: cannot download $req" >&2; exit 1; }
  done <"$CARRY/requirements.txt"
  # a source-only package (word2number) becomes a wheel here
  for sdist in "$CARRY"/whl/*.tar.gz "$CARRY"/whl/*.zip; do
    [[ -e $sdist ]] || continue
    "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$CARRY/whl" "$sdist"
    rm -f "$sdist"
  done
  for f in train_data/instruction_data/DR/train.csv train_data/instruction_data/DR/val.csv \
           test_data/test_instruction/DR.csv; do
    mkdir -p "$(dirname "$CARRY/imhi/$f")" && cp "$data/$f" "$CARRY/imhi/$f"
  done
  echo "prepared $CARRY: $(find "$CARRY/whl" -name '*.whl' | wc -l) wheels, DR data;" \
       "$(du -sh "$CARRY" | cut -f1) (carry limit 64 MiB with the working tree)"
  echo 'now: run(command="bash scripts/gpu_check.sh", carry=["build/gpu_check"], timeout_s=600)'
  exit 0
fi

# ------------------------------------------------------------------ the check
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
REPORT_DIR=${OUT:-$WORK}
mkdir -p "$REPORT_DIR"
SUMMARY=$REPORT_DIR/gpu_check.txt
: >"$SUMMARY"
say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

fail() {  # line, command
  say "FAILED at line $1 ($2): the error is above"
  exit 1
}
trap 'fail "$LINENO" "$BASH_COMMAND"' ERR

step() {  # name, command...: the command's output to NAME.log; its tail shown when it fails
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" >"$REPORT_DIR/$name.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    tail -n 40 "$REPORT_DIR/$name.log" >&2
    say "FAILED: $name (exit $rc, $((SECONDS - t0)) s; log $REPORT_DIR/$name.log)"
    exit "$rc"
  fi
  say "ok: $name ($((SECONDS - t0)) s)"
}

say "imhi-bench GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

DEVICE=cuda
if [[ ${GPU_CHECK_ON_CPU:-0} == 1 ]]; then
  DEVICE=cpu
  say "GPU_CHECK_ON_CPU=1: every step runs on the CPU in fp32 (a test of this script only)"
elif ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; } &&
     ! compgen -G '/dev/nvidia[0-9]*' >/dev/null; then
  say "no GPU: nothing to check"
  exit 0
fi
if [[ $DEVICE == cuda ]] && command -v nvidia-smi >/dev/null 2>&1; then
  say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
fi

# ------------------------------------------------------------------ python
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 GPU_CHECK_DEVICE=$DEVICE
ready() {  # python: has a torch that sees the device, trl, lm-eval and imhi_bench
  "$1" - <<'EOF' >/dev/null 2>&1
import os, torch, trl, peft, lm_eval, imhi_bench  # noqa
assert os.environ["GPU_CHECK_DEVICE"] == "cpu" or torch.cuda.is_available()
EOF
}
cuda_torch() {
  "$1" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1
}
PY=
if [[ -n ${PYTHON:-} ]]; then
  PY=$PYTHON
else
  for c in "$ROOT/.venv/bin/python" "$ROOT/.venv-gpu/bin/python" python3; do
    if command -v "$c" >/dev/null 2>&1 && ready "$c"; then PY=$c; break; fi
  done
fi
if [[ -z $PY ]] && compgen -G "$CARRY/whl/*.whl" >/dev/null && cuda_torch python3; then
  SITE=$WORK/site
  step install_wheels python3 -m pip install --no-index --no-deps --no-compile \
    --no-cache-dir --target "$SITE" "$CARRY"/whl/*.whl
  export PYTHONPATH="$SITE:$PYTHONPATH"
  PY=python3
  say "python: the image's python3 and torch, with $(find "$CARRY/whl" -name '*.whl' | wc -l) carried wheels"
fi
if [[ -z $PY ]]; then
  say "no ready python: installing the GPU set (constraints/gpu.txt) and imhi-bench[dev] into .venv-gpu"
  install_online() {
    python3 -m venv "$ROOT/.venv-gpu"
    "$ROOT/.venv-gpu/bin/python" -m pip install -q --retries 1 --timeout 20 \
      -c "$ROOT/constraints/gpu.txt" -e "${ROOT}[dev]"
  }
  step install_pypi install_online
  PY=$ROOT/.venv-gpu/bin/python
fi
ready "$PY" || {
  "$PY" -c 'import torch, trl, peft, lm_eval, imhi_bench; print("cuda", torch.cuda.is_available())' >&2 || true
  say "FAILED: $PY cannot import torch/trl/peft/lm_eval/imhi_bench, or its torch sees no CUDA device"
  exit 1
}
imhi() { "$PY" -m imhi_bench.cli.main "$@"; }  # the `imhi-bench` entry point
"$PY" - <<'EOF' | tee -a "$SUMMARY"
import importlib, platform, torch
print(f"python {platform.python_version()} ({__import__('sys').executable})")
print(f"torch {torch.__version__}, cuda {torch.version.cuda}, "
      f"device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}, "
      f"bf16 {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}")
for name in ("transformers", "trl", "peft", "accelerate", "datasets", "lm_eval", "imhi_bench",
             "flash_attn"):
    try:
        print(f"{name} {importlib.import_module(name).__version__}")
    except Exception as e:  # noqa: BLE001 -- flash_attn may be absent
        print(f"{name}: not importable ({type(e).__name__})")
# which versions differ from the GPU set (constraints/gpu.txt): what this run did not test
import importlib.metadata as md, re
from packaging.version import Version
differ = []
for line in open("constraints/gpu.txt"):
    m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
    if m:
        try:
            have = md.version(m[1])
        except md.PackageNotFoundError:
            have = "absent"
        if have == "absent" or Version(have).public != Version(m[2]).public:
            differ.append(f"{m[1]} {have} (set: {m[2]})")
print("GPU set: " + ("as pinned" if not differ else "differs: " + ", ".join(differ)))
EOF

# ------------------------------------------------------------------ data and model
DATA=${IMHI_DATA_DIR:-}
for d in "$ROOT/../shared/imhi" "$CARRY/imhi"; do
  [[ -z $DATA && -f $d/test_data/test_instruction/DR.csv ]] && DATA=$d
done
[[ -n $DATA && -f $DATA/train_data/instruction_data/DR/train.csv ]] || {
  say "FAILED: no IMHI DR data (set IMHI_DATA_DIR, or run: bash scripts/gpu_check.sh prepare)"
  exit 1
}
export IMHI_DATA_DIR=$DATA
say "data: $DATA"
step build_model "$PY" -c "import sys; sys.path.insert(0, 'tests')
from tiny_models import build_tiny_llama
build_tiny_llama('$WORK/llama', hidden_size=256, layers=2, vocab_size=2000)"

COMMON=(model="$WORK/llama" sets=DR max_steps="$STEPS" learning_rate=2e-3 max_length=1024
        per_device_batch_size=8 gradient_accumulation_steps=1 precision=bf16 report_to=none
        eval_steps=0 save_steps=1000 logging_steps=10 data_dir="$DATA")

check_card() {  # folder, attention, batching: the card says what ran; prints tokens/s
  "$PY" - "$@" <<'EOF' | tee -a "$SUMMARY"
import json, os, sys
from imhi_bench.models.card import CARD_FILE
folder, attention, batching = sys.argv[1:]
card = json.load(open(os.path.join(folder, CARD_FILE)))
want = {"precision": "bf16" if os.environ["GPU_CHECK_DEVICE"] == "cuda" else "fp32",
        "attention": attention, "batching": batching, "global_step": int(os.environ["STEPS"])}
got = {k: card.get(k) for k in want}
assert got == want, f"training card says {got}, expected {want}"
m = card["metrics"]
# TRL's running count of real (attention-mask) tokens, in the last checkpoint's log history
step = f"checkpoint-{want['global_step']}"
history = json.load(open(os.path.join(folder, step, "trainer_state.json")))["log_history"]
tokens = max((h.get("num_tokens", 0) for h in history), default=0)
print(f"  {os.path.basename(folder)}: {got}; train_runtime {m['train_runtime']:.1f} s "
      f"(start-up included), {tokens:,.0f} real tokens, {tokens / m['train_runtime']:,.0f} "
      f"tokens/s, train_loss {m.get('train_loss', float('nan')):.3f}")
EOF
}
check_eval() {  # run folder
  "$PY" - "$1" <<'EOF' | tee -a "$SUMMARY"
import json, os, sys
res = json.load(open(os.path.join(sys.argv[1], "imhi_results.json")))
text = json.dumps(res.get("sets", res))
print(f"  eval {os.path.basename(sys.argv[1])}: {text[:400]}")
EOF
}
export STEPS

# ------------------------------------------------------------------ training and eval
step train_sdpa imhi train "${COMMON[@]}" output_dir="$WORK/sdpa" attn_implementation=sdpa \
  batching=group_by_length
check_card "$WORK/sdpa" sdpa group_by_length

FLASH=0
if "$PY" -c 'import flash_attn' >/dev/null 2>&1 && [[ $DEVICE == cuda ]]; then
  FLASH=1
  step train_flash imhi train "${COMMON[@]}" output_dir="$WORK/flash" \
    attn_implementation=flash_attention_2 batching=padding_free
  check_card "$WORK/flash" flash_attention_2 padding_free
else
  say "flash-attention + padding_free: NOT checked (flash_attn does not import here)"
fi

step eval_sdpa imhi eval --model "$WORK/sdpa" --tasks imhi_dr --limit 8 --device "$DEVICE" \
  --output "$WORK/eval_sdpa" --no-db --no-cache --data-dir "$DATA"
check_eval "$WORK/eval_sdpa"
if ((FLASH)); then
  step eval_flash imhi eval --model "$WORK/flash" --tasks imhi_dr --limit 8 --device "$DEVICE" \
    --output "$WORK/eval_flash" --no-db --no-cache --data-dir "$DATA"
  check_eval "$WORK/eval_flash"
fi

if [[ $REPORT_DIR == "$WORK" ]]; then rm -rf "${WORK:?}"/{llama,sdpa,flash,eval_sdpa,eval_flash,site}
else rm -rf "${WORK:?}"; fi
say "all checks passed ($SECONDS s); summary: $SUMMARY"
