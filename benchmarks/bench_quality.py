"""BART-score speed: ours vs the plain MentaLLaMA/BARTScore loop, side by side in one run.

Both score the same 500 (generation, gold) pairs with the same tiny local BART (built here
with tests/tiny_models.py, nothing downloaded).  The reference is neulab's BARTScorer.score
as MentaLLaMA's score.py calls it: batches of 4 in file order, full log-softmax over every
padded target position.  Ours: one tokenisation pass (the fast backend call), batches
planned by length (encoder by source length, decoder in 2-D strips of target and source
length, long samples in small batches), pre-shaped padding masks, the LM head on real
target positions only, inference_mode, and on CPU two streams with one torch thread each.
The two sides take turns within each round (best of N each), so drift in the machine's
speed hits both.  Prints both times, the ratio and the largest per-sample |difference|.
Targets: ratio >= 3, max |diff| <= 1e-4.

Measured on the 2-core dev box (a VM; torch 2.13 CPU, 2 threads, nothing else of ours
running) on 2026-11-22, 38 runs over about 40 minutes: ours took 0.48-0.54 s, the
reference 1.44-1.82 s; the ratio read 2.93x to 3.37x, >= 3x in 35 of the 38 runs, median
about 3.1x; max |diff| 4.3e-6.  Before the batches were planned by length (fixed batches of
16 in chunks sorted by source length) ours took 0.52-0.72 s and the ratio's median was
about 2.9x.  With --threads 1 (one stream) the ratio is about 2.3x.

Ours is near this CPU's floor for the model: one stream spends 0.95 CPU-seconds, of which
tokenising 0.16, attention about 0.37 (the SDPA kernel, already close to its cost per score
element; padding now adds ~17% to the ideal area), the LM head and its log-softmax 0.15;
with two streams both cores stay ~94% busy.  The reference's own work is ~2 CPU-seconds,
and its two intra-op threads scale better or worse with the VM's load, which is most of
the spread in the ratio.

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
    from imhi_bench.benchmark.data import load_examples

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
    ap.add_argument("--batch-size", type=int, default=16,
                    help="ours: average-length pairs per batch (reference: always 4)")
    ap.add_argument("--repeats", type=int, default=5, help="best of N for each side")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tiny_models import build_tiny_bart

    from imhi_bench.scoring.quality.bart_model import load_bart
    from imhi_bench.scoring.quality.bart_score import bart_scores, reference_scores

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
    print(f"ours (batches of ~{args.batch_size}, length-planned): {t_ours:.3f} s")
    print(f"speed-up: {t_ref / t_ours:.2f}x (target >= 3x)")
    print(f"max |per-sample difference|: {diff:.2e} (target <= 1e-4); "
          f"|mean difference| {abs(mean_ref - mean_ours):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
