"""Cost of the contamination check against the evaluation of the same model.

Both run in this process on the same tiny local Llama and the same sets and --limit:

- check: `imhi_bench.train.contamination.run_check` (load the model, one teacher-forced
         forward pass per test item and per held-out item, the statistics);
- eval:  `imhi_bench.runs.evaluate.run_eval` end to end (generation, labels, scores), with
         the generation cache off and --max-new-tokens as given.

Alternating for --rounds rounds; prints each round's seconds, each side's median and the
median of the per-round ratios check / eval.  The worker runs both on every submission, so
the ratio is what the check adds.

    python benchmarks/bench_contamination.py [--sets DR,SAD] [--limit 50] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

import offline  # noqa: F401  (first: HF offline variables, tiny_models on the path)

# isort: split

from tiny_models import build_tiny_llama  # noqa: E402

from imhi_bench.models import hf  # noqa: E402, F401  (registers imhi-hf)
from imhi_bench.models.options import ModelOptions  # noqa: E402
from imhi_bench.runs.evaluate import EvalOptions, run_eval  # noqa: E402
from imhi_bench.tasks.names import task_name  # noqa: E402
from imhi_bench.train.contamination import CheckOptions, run_check  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="DR,SAD")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sets = args.sets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_llama(Path(tmp) / "llama")

        def check() -> None:
            run_check(CheckOptions(model=str(model), sets=sets, limit=args.limit,
                                   progress=False), log=lambda *_: None)

        runs = iter(range(10**6))

        def evaluate() -> None:
            run_eval(EvalOptions(
                model=ModelOptions(model=str(model)),
                tasks=",".join(task_name(s, "instruction") for s in sets), limit=args.limit,
                max_new_tokens=args.max_new_tokens, output=str(Path(tmp) / f"run{next(runs)}"),
                use_cache=False, bootstrap=0), log=lambda *_: None)

        times: dict[str, list[float]] = {"check": [], "eval": []}
        for _ in range(args.rounds):
            for name, fn in (("check", check), ("eval", evaluate)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    c, e = median(times["check"]), median(times["eval"])
    # A shared machine's load changes between rounds; the two sides of one round ran back to
    # back, so the per-round ratio is the fairer comparison (as bench_generate reports it).
    ratios = [x / y for x, y in zip(times["check"], times["eval"], strict=True)]
    print(f"{len(sets)} sets x {args.limit} test items (+ as many held-out); eval with "
          f"{args.max_new_tokens} new tokens; median of {args.rounds} rounds")
    print("per round (check / eval): " + ", ".join(
        f"{x:.2f} s / {y:.2f} s = {x / y:.2f} x"
        for x, y in zip(times["check"], times["eval"], strict=True)))
    print(f"check {c:.2f} s, eval {e:.2f} s (medians); median per-round ratio: the check "
          f"costs {median(ratios):.2f} x the eval")


if __name__ == "__main__":
    main()
