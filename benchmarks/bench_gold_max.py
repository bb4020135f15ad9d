"""What the default protocol's generation limit costs: `imhi-bench eval` with gold-max (the
longest released gold response of the set in the model's tokens) against a fixed 256 new
tokens, on the tests' tiny random Llama (`build_tiny_llama`'s defaults: 1 layer, hidden size
32; it rarely stops by itself, so this is the worst case: every sample runs to its limit), the
same prompts, alternating for --rounds rounds.

Prints, per set, the gold-max limit under the tiny model's tokenizer and how many released
gold responses are longer than 256 of its tokens, then the median wall-time ratio
(gold-max / 256) of the runs and the gold-max runs' median seconds per sample (the "s/sample"
line: README's per-sample figure, whole runs divided by the samples they generate, so
loading and scoring are in it).  A real model stops at its end-of-sequence token, so it pays
only for the answers that are really longer than 256 tokens.

    python benchmarks/bench_gold_max.py [--tasks DR,SAD] [--limit 8] [--rounds 2]
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
from transformers import AutoTokenizer  # noqa: E402

from imhi_bench.benchmark.data import load_examples, resolve_data_dir  # noqa: E402
from imhi_bench.models.options import ModelOptions  # noqa: E402
from imhi_bench.runs.evaluate import EvalOptions, run_eval  # noqa: E402
from imhi_bench.runs.lengths import gold_lengths, gold_max_tokens  # noqa: E402


def _run(model: Path, tasks: str, limit: int, max_new: int | None, out: Path) -> float:
    opts = EvalOptions(model=ModelOptions(model=str(model), device="cpu"), tasks=tasks,
                       limit=limit, max_new_tokens=max_new, output=str(out), use_cache=False,
                       bootstrap=0)
    t = time.perf_counter()
    run_eval(opts, log=lambda *_: None)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="DR,SAD")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gold-max-"))
    model = build_tiny_llama(tmp / "llama")
    tok = AutoTokenizer.from_pretrained(model)
    data_dir = resolve_data_dir()
    tasks = [f"imhi_{t.lower().replace('-', '')}" for t in args.tasks.split(",")]
    limits, notes = gold_max_tokens(tasks, data_dir, tok, context=2048)
    samples = 0  # what one run generates: --limit rows of each set, or all it has
    for task in tasks:
        set_name = task.removeprefix("imhi_")
        golds = [e.gold for e in load_examples(set_name, "instruction", data_dir)]
        samples += min(args.limit, len(golds))
        over = sum(n > 256 for n in gold_lengths(golds, tok))
        print(f"{task}: gold-max {limits[task]} tokens; {over} of {len(golds)} gold responses "
              "are longer than 256 of the tiny model's tokens")
    for note in notes:
        print("note:", note)
    ratios, gold_times = [], []
    for r in range(args.rounds):
        fixed = _run(model, args.tasks, args.limit, 256, tmp / f"fixed{r}")
        gold = _run(model, args.tasks, args.limit, None, tmp / f"gold{r}")
        ratios.append(gold / fixed)
        gold_times.append(gold)
        print(f"round {r + 1}: 256 tokens {fixed:.1f} s, gold-max {gold:.1f} s, "
              f"ratio {gold / fixed:.2f}")
    print(f"median ratio gold-max / 256: {median(ratios):.2f} "
          f"({args.limit} samples of each of {args.tasks}, tiny Llama, every sample at its "
          "limit)")
    print(f"s/sample (gold-max): {median(gold_times) / samples:.1f} s "
          f"(median run {median(gold_times):.1f} s / {samples} samples)")


if __name__ == "__main__":
    main()
