"""Time to compute the leaderboard's rank bands for 100 runs over the 8 ranked sets
(target: well under a few seconds on a 2-core machine).

    python benchmarks/bench_bands.py [--runs 100] [--repeat 3] [--store]

Synthetic runs on the released test sets' sizes and classes (8,169 samples per run), each
right on a share of samples between 40% and 90%, the others a random class or unreadable.
Prints "cold" (the sets' resample draws made first, as on the first page load after a
start) and "warm" (draws cached: every later table), the best of --repeat each.  With
--store, also records the runs, samples included, in a temporary SQLite store and times the
leaderboard's default view with its band column (`leaderboard.data.default_view`: the
store queries, the labels of every ranked run, the bands), as `imhi-bench leaderboard --csv`
builds it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from imhi_bench.benchmark.sets import SETS
from imhi_bench.leaderboard.data import RANKED_SETS
from imhi_bench.scoring import resample
from imhi_bench.scoring.bands import rank_bands
from imhi_bench.scoring.coverage import RELEASED_TEST_ROWS


def synthetic_runs(n_runs: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sizes = RELEASED_TEST_ROWS["instruction"]
    gold = {s: [SETS[s].classes[i] for i in rng.integers(0, len(SETS[s].classes), sizes[s])]
            for s in RANKED_SETS}
    runs = {}
    for r in range(n_runs):
        skill = 0.4 + 0.5 * r / max(1, n_runs - 1)
        runs[r] = {}
        for s, g in gold.items():
            classes = list(SETS[s].classes) + [None]
            right = rng.random(len(g)) < skill
            guess = rng.integers(0, len(classes), len(g))
            runs[r][s] = (g, [x if ok else classes[c] for x, ok, c in zip(g, right, guess)])
    return runs


def timed(runs: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    bands = rank_bands(runs, RANKED_SETS)
    return time.perf_counter() - t0, bands


def store_seconds(runs: dict, repeat: int) -> float:
    from imhi_bench.leaderboard.data import default_view
    from imhi_bench.scoring.pipeline import Sample, score_samples
    from imhi_bench.scoring.protocol import default_protocol, protocol_json
    from imhi_bench.store.engine import open_store, store_engine
    from imhi_bench.store.record import record_scored

    with tempfile.TemporaryDirectory(prefix="imhi-bench-bands-") as tmp:
        factory = open_store(str(Path(tmp) / "store.sqlite"))
        with factory() as session, session.begin():  # seeding is not timed
            for r, sets in runs.items():
                samples = {s: [Sample(s, i, "", "", g, p, g == p)
                               for i, (g, p) in enumerate(zip(*sets[s]))] for s in sets}
                report = score_samples(samples, n_boot=0)
                report["provenance"] = {"sets": {s: {"rows": len(v), "complete": True}
                                                 for s, v in samples.items()},
                                        # ranked together: the default protocol's runs
                                        "protocol": protocol_json(default_protocol())}
                record_scored(session, report, samples, model={"name": f"model-{r:03d}"})
        engine = store_engine(factory)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            view = default_view(engine)
            best = min(best, time.perf_counter() - t0)
        engine.dispose()
    bands = view["rank band"].dropna()
    print(f"store: {len(bands)} rows with a band, e.g. {', '.join(bands.head(5))}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", action="store_true",
                    help="also time the leaderboard's default view from a SQLite store")
    args = ap.parse_args()
    runs = synthetic_runs(args.runs)
    cold = warm = float("inf")
    for _ in range(args.repeat):
        resample.bootstrap_weights.cache_clear()
        seconds, bands = timed(runs)
        cold = min(cold, seconds)
        warm = min(warm, timed(runs)[0])
    shared = sum(b.rank != b.worst for b in bands.values())
    print(f"{args.runs} runs x {len(RANKED_SETS)} sets ({sum(len(v[0]) for v in runs[0].values())}"
          f" samples each): bands cold {cold:.2f} s, warm {warm:.2f} s "
          f"(best of {args.repeat}); {shared} runs share ranks")
    if args.store:
        print(f"leaderboard default view with bands from the store: "
              f"{store_seconds(runs, args.repeat):.2f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
