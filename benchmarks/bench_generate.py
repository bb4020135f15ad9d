"""Speed of `imhi-bench eval` against a plain transformers generate loop (the MentaLLaMA
IMHI.py way: batches of 8 prompts in file order, padded to the longest, greedy).

Both run in this process on the same tiny local Llama, the same prompts (the first
--per-set rows of each set, file order) and the same max_new_tokens, alternating for
--rounds rounds; the median of the per-round ratios counts (the machine may be shared,
and the two sides of a round run back to back).  Timed:

- baseline: load model + tokenizer, then the loop;
- eval:     `imhi_bench.runs.evaluate.run_eval` end to end (load model, build the lm-eval tasks,
            generate, label, score with a 1000-resample bootstrap, write the run folder),
            with the generation cache off.

Imports and one small warm-up run of each side happen before any timing.  Prints the
speed ratio and, for each side, the share of wall time spent outside `model.generate`.
Targets: ratio >= 1.5, eval's share outside generate <= 10%.

    python benchmarks/bench_generate.py [--sets DR,SAD] [--per-set 100] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import offline  # noqa: F401  (first: HF offline variables, tiny_models on the path)

# isort: split

import lm_eval.evaluator  # noqa: E402, F401  (imports are process set-up, not timed)
import lm_eval.tasks  # noqa: E402, F401
import torch  # noqa: E402
from lm_eval.models.utils import postprocess_generated_text  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from imhi_bench.benchmark.data import load_examples  # noqa: E402
from imhi_bench.models import hf  # noqa: E402, F401  (registers imhi-hf)
from imhi_bench.models.options import ModelOptions  # noqa: E402
from imhi_bench.runs.evaluate import EvalOptions, run_eval  # noqa: E402
from imhi_bench.tasks.names import STOP_STRINGS, task_name  # noqa: E402

BASELINE_BATCH = 8


def baseline(model_dir: Path, prompts: list[str], max_new: int, max_ctx: int) -> dict:
    """MentaLLaMA IMHI.py style: fixed batches of 8 in file order, padded to the longest."""
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    in_generate = 0.0
    outputs = []
    for i in range(0, len(prompts), BASELINE_BATCH):
        batch = prompts[i:i + BASELINE_BATCH]
        enc = tok(batch, return_tensors="pt", padding=True)
        # left-truncate to the same context the eval allows (it keeps the question)
        enc = {k: v[:, -max_ctx:] for k, v in enc.items()}
        g0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        in_generate += time.perf_counter() - g0
        outputs += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    wall = time.perf_counter() - t0
    return {"wall": wall, "generate": in_generate, "outputs": outputs}


def evaluate(model_dir: Path, sets: list[str], per_set: int, max_new: int, out: Path) -> dict:
    opts = EvalOptions(
        model=ModelOptions(model=str(model_dir)),
        tasks=",".join(task_name(s) for s in sets), limit=per_set, max_new_tokens=max_new,
        use_cache=False, output=str(out),
    )
    t0 = time.perf_counter()
    run = run_eval(opts, log=lambda _: None)
    wall = time.perf_counter() - t0
    outputs = [s.generation for name in run.samples for s in run.samples[name]]
    return {"wall": wall, "generate": run.generate_seconds, "outputs": outputs,
            "batches": run.lm_eval_results["config"]["batch_sizes"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="DR,SAD", help="comma list of sets (default DR,SAD)")
    p.add_argument("--per-set", type=int, default=100, help="prompts per set (default 100)")
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="default 256, the tasks' own (IMHI answers are explanations)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    args = p.parse_args()

    from tiny_models import build_tiny_llama

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    prompts = [e.query for s in sets for e in load_examples(s)[:args.per_set]]
    with tempfile.TemporaryDirectory(prefix="imhi-bench-") as tmp:
        model_dir = build_tiny_llama(Path(tmp) / "llama", hidden_size=args.hidden_size,
                                     layers=args.layers)
        max_ctx = 2048 - args.max_new_tokens  # the tiny Llama's max_position_embeddings
        # warm-up, untimed: imports, file cache, first-call costs of both paths
        baseline(model_dir, prompts[:2], 2, max_ctx)
        evaluate(model_dir, sets, 1, 2, Path(tmp) / "warm-up")
        print(f"{len(prompts)} prompts ({', '.join(sets)}, first {args.per_set} each), "
              f"max_new_tokens={args.max_new_tokens}, tiny Llama hidden={args.hidden_size} "
              f"layers={args.layers}, torch threads={torch.get_num_threads()}")
        base_runs, eval_runs = [], []
        for r in range(args.rounds):
            b = baseline(model_dir, prompts, args.max_new_tokens, max_ctx)
            e = evaluate(model_dir, sets, args.per_set, args.max_new_tokens,
                         Path(tmp) / f"run{r}")
            base_runs.append(b)
            eval_runs.append(e)
            print(f"round {r + 1}: baseline {b['wall']:.2f}s (generate {b['generate']:.2f}s), "
                  f"eval {e['wall']:.2f}s (generate {e['generate']:.2f}s)")
    # A shared machine's load changes between rounds: the two sides of one round ran back
    # to back, so the per-round ratio is the fair comparison; report its median.
    ratios = [b["wall"] / e["wall"] for b, e in zip(base_runs, eval_runs, strict=True)]
    shares = [(e["wall"] - e["generate"]) / e["wall"] for e in eval_runs]
    shares_b = [(b["wall"] - b["generate"]) / b["wall"] for b in base_runs]
    ratio, share_e, share_b = median(ratios), median(shares), median(shares_b)
    b, e = base_runs[-1], eval_runs[-1]
    # the eval cuts each generation at the task's stop strings; compare like with like
    cut = [postprocess_generated_text(x, list(STOP_STRINGS), None) for x in b["outputs"]]
    same = sum(x == y for x, y in zip(cut, e["outputs"], strict=True))
    print(f"eval batches (auto): {len(e['batches'])}, sizes {min(e['batches'])}.."
          f"{max(e['batches'])}")
    print(f"identical generations: {same}/{len(prompts)}")
    print(f"per-round speed-up: {', '.join(f'{r:.2f}x' for r in ratios)}")
    print(f"baseline (batch {BASELINE_BATCH}, file order): median {share_b:.1%} outside generate")
    print(f"imhi-bench eval: median {share_e:.1%} outside generate "
          f"(per round: {', '.join(f'{x:.1%}' for x in shares)})")
    print(f"speed-up: {ratio:.2f}x median (target >= 1.5x); outside generate: {share_e:.1%} "
          f"(target <= 10%)")
    return 0 if ratio >= 1.5 and share_e <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
