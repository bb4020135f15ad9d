"""Time to label and score every released instruction sample (target: well under 1 s).

    python benchmarks/bench_score.py [--data-dir DIR] [--repeat 3]

Gold responses stand in for generations: reading them exercises the same extraction path.
Prints the best of --repeat runs for labelling, for scoring (with the 1000-draw bootstrap),
and their sum.
"""

from __future__ import annotations

import argparse
import sys
import time

import offline  # noqa: F401  (first: the IMHI data beside the checkout, as the other benchmarks)

# isort: split

from imhi_bench.benchmark.data import load_examples, resolve_data_dir  # noqa: E402
from imhi_bench.benchmark.sets import SETS  # noqa: E402
from imhi_bench.scoring.pipeline import label_samples, score_samples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = resolve_data_dir(args.data_dir)
    rows = {
        s.name: [(e.doc_id, e.gold, e.gold, None)
                 for e in load_examples(s.name, "instruction", root)]
        for s in SETS.values()
        if (root / s.path("instruction")).is_file()
    }
    if not rows:
        sys.exit(f"bench_score: no IMHI test files in {root}: give --data-dir DIR or set "
                 "$IMHI_DATA_DIR, or run `imhi-bench data fetch`")
    n = sum(len(r) for r in rows.values())
    best_label = best_score = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        samples = {name: label_samples(name, r) for name, r in rows.items()}
        t1 = time.perf_counter()
        score_samples(samples)
        t2 = time.perf_counter()
        best_label, best_score = min(best_label, t1 - t0), min(best_score, t2 - t1)
    print(f"{n} samples over {len(rows)} sets (instruction format)")
    print(f"label: {best_label:.3f} s   score (+1000-draw bootstrap): {best_score:.3f} s   "
          f"total: {best_label + best_score:.3f} s   (target < 1 s; "
          f"{(best_label + best_score) / 1.0:.2f}x of target)")


if __name__ == "__main__":
    main()
