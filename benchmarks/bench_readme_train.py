"""README's training figure, as a new user would reproduce it: the tests' tiny random Llama,
evaluated on 30 DR test posts, trained through `imhi-bench train` with the MentaLLaMA-7B
recipe cut down for a CPU, and evaluated again.

Prints the unparseable answers before and after, the training wall time and the
per-step time; the overrides are the ones README shows (small batches: the recipe's own
8 x 8 batch is for GPUs).  Runs the CLI in subprocesses, as README's commands do.

    python benchmarks/bench_readme_train.py [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import offline  # noqa: F401  (first: HF offline variables, tiny_models on the path)

# isort: split

from tiny_models import build_tiny_llama  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# README's training example: the recipe, then what a CPU needs
OVERRIDES = ["sets=DR", "max_length=384", "learning_rate=2e-3", "per_device_batch_size=4",
             "gradient_accumulation_steps=1", "save_steps=50", "eval_steps=0", "f1_steps=0",
             "report_to=none"]


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "imhi_bench", *args], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)


def _unparseable(model: Path, out: Path) -> tuple[int, int]:
    _cli("eval", "--model", str(model), "--tasks", "imhi_dr", "--limit", "30",
         "--max-new-tokens", "64", "--no-db", "--no-cache", "--bootstrap", "0",
         "--output", str(out))
    dr = json.loads((out / "imhi_results.json").read_text())["sets"]["DR"]
    return dr["unparseable"], dr["n"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-readme-train-"))
    model = build_tiny_llama(tmp / "llama")
    before = _unparseable(model, tmp / "before")
    out = tmp / "trained"
    t = time.perf_counter()
    _cli("train", "--config", "mentallama-7b", f"model={model}",
         f"max_steps={args.steps}", f"output_dir={out}", *OVERRIDES)
    took = time.perf_counter() - t
    after = _unparseable(out, tmp / "after")
    print(f"overrides: max_steps={args.steps} {' '.join(OVERRIDES)}")
    print(f"unparseable answers on 30 DR posts: {before[0]}/{before[1]} before, "
          f"{after[0]}/{after[1]} after")
    print(f"training: {took:.0f} s in all, {took / args.steps:.2f} s a step (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
