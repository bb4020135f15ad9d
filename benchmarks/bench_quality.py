"""BART-score speed: ours vs the plain MentaLLaMA/BARTScore loop, side by side in one run.

Both score the same 500 (generation, gold) pairs with the same tiny local BART (built here
with tests/tiny_models.py, nothing downloaded).  The reference is neulab's BARTScorer.score
as MentaLLaMA's score.py calls it: batches of 4 in file order, full log-softmax over every
padded target position.  Ours: one tokenisation pass (the fast backend call), length-sorted
batches, pre-shaped padding masks, the LM head on real target positions only,
inference_mode, and on CPU two streams with one torch thread each.  The two sides take
turns within each round (best of N each), so drift in the machine's speed hits both.
Prints both times, the ratio and the largest per-sample |difference|.  Targets: ratio
>= 3, max |diff| <= 1e-4.

Measured on the 2-core dev box (a VM; torch 2.13 CPU, 2 threads, nothing else of ours
running), 30 runs over one hour on 2026-11-22: ours took 0.52-0.72 s, the reference
1.40-2.20 s; the ratio read 2.63x to 3.28x, >= 3x in 9 of the 30 runs, median about 2.9x;
max |diff| 4.3e-6. The lowest ratios came in the stretch when the reference's two intra-op
threads scaled best (reference 1.40-1.52 s, ours 0.52-0.54 s). The 3x target is met only
some of the time. Ours is near this CPU's floor for the model: it spends 1.0 CPU-second
(tokenising 0.16 s; the attention and vocabulary softmaxes most of the rest, which both
sides must compute for every real token) with both cores busy; the reference spends about
3 CPU-seconds. With --threads 1 (one stream) the ratio was 2.0x-2.3x.

    python benchmarks/bench_quality.py [--pairs 500] [--batch-size 16] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("IMHI_DATA_DIR", str(ROOT.parent / "shared" / "imhi"))


def pairs(n: int) -> tuple[list[str], list[str]]:
    """n (generation, gold) pairs: gold = a released DR/dreaddit/SAD test response, the
    'generation' = the next row's response of the same set (realistic lengths and wording)."""
    from imhi_bench.data import load_examples

    gens, golds = [], []
    for name in ("DR", "dreaddit", "SAD"):
        rows = [e.gold for e in load_examples(name, "instruction")]
        for i in range(len(rows)):
            golds.append(rows[i])
            gens.append(rows[(i + 1) % len(rows)])
    return gens[:n], golds[:n]


def interleaved_best(fns, repeats: int) -> list[tuple[float, list[float]]]:
    """Best wall time of each function over `repeats` rounds, the functions taking turns
    within a round: the CPU speed of a shared machine drifts over seconds, and timing one
    side's repeats after the other's would fold that drift into the ratio."""
    best = [(float("inf"), [])] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - t
            if elapsed < best[k][0]:
                best[k] = (elapsed, out)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=16, help="ours (reference is always 4)")
    ap.add_argument("--repeats", type=int, default=5, help="best of N for each side")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tiny_models import build_tiny_bart

    from imhi_bench.bart_score import bart_scores, load_bart, reference_scores

    gens, golds = pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_bart(Path(tmp) / "bart"))
        net, tok = load_bart(model_dir, device="cpu")

        def ref():
            return reference_scores(net, tok, gens, golds, batch_size=4)

        def ours():
            return bart_scores(gens, golds, model=model_dir, device="cpu",
                               batch_size=args.batch_size, progress=False)

        ref(), ours()  # warm-up (allocator, kernels)
        (t_ref, s_ref), (t_ours, s_ours) = interleaved_best([ref, ours], args.repeats)
    diff = max(abs(a - b) for a, b in zip(s_ref, s_ours, strict=True))
    mean_ref, mean_ours = sum(s_ref) / len(s_ref), sum(s_ours) / len(s_ours)
    print(f"pairs {len(gens)}, tiny BART, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"reference (batch 4, file order): {t_ref:.3f} s")
    print(f"ours (batch {args.batch_size}, length-sorted): {t_ours:.3f} s")
    print(f"speed-up: {t_ref / t_ours:.2f}x (target >= 3x)")
    print(f"max |per-sample difference|: {diff:.2e} (target <= 1e-4); "
          f"|mean difference| {abs(mean_ref - mean_ours):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
