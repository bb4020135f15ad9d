"""Main leaderboard page render time (Streamlit AppTest) with 10 and with 1,000 models, each
with 27 per-set result rows (3 runs: one per format, 9 sets each; one model in ten has a
partial `--limit` run, which the default view leaves out).  Target: 1,000 models within 2x
the time of 10.

    python benchmarks/bench_leaderboard.py [--repeat 5] [--models 10,1000]

Both stores are seeded (the paper's rows, then `record_run`) and timed side by side in one process.
"cold" renders right after clearing Streamlit's caches (engine, two queries, table build,
render); "warm" renders a fresh session on cached frames (what every visitor after the first
gets until a new run is recorded).  Each is the median of --repeat renders.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from imhi_bench.benchmark.sets import FORMATS, SET_NAMES
from imhi_bench.store.engine import open_store
from imhi_bench.store.record import record_run
from imhi_bench.store.reported import load_reported

APP = str(Path(__file__).resolve().parents[1] / "leaderboard" / "app.py")
TYPES = ("fine-tuned", "base", "API", "discriminative")
TRAINING = ("IMHI", "IMHI-general", "other")


def seed(url: str, n_models: int) -> None:
    factory = open_store(url)
    load_reported(factory)  # the paper's rows, as `imhi-bench db init` loads them
    with factory() as session, session.begin():  # one transaction: seeding is not timed
        for m in range(n_models):
            model = {"name": f"model-{m:04d}", "path": f"org/model-{m:04d}",
                     "type": TYPES[m % 4], "params": (m % 70 + 1) * 10**9,
                     "training_data": TRAINING[m % 3]}
            for f, fmt in enumerate(FORMATS):
                sets = [s for i, s in enumerate(SET_NAMES) if i != f]  # 9 sets per run
                # every tenth model's completion run is a `--limit 20` try (partial: not
                # ranked); the others scored every sample (their provenance says so)
                limit = 20 if fmt == "completion" and m % 10 == 0 else None
                results = {"sets": {
                    s: {"weighted_f1": 40 + (m * 7 + i * 3) % 55,
                        "weighted_f1_ci": [35.0, 90.0], "accuracy": 50.0, "macro_f1": 45.0,
                        "unparseable": 0, "n": limit or 400,
                        "bart_score": -3.0 - (m % 10) / 10}
                    for i, s in enumerate(sets)
                }, "provenance": {"limit": limit, "sets": {
                    s: {"rows": 400, "complete": not limit} for s in sets}}}
                record_run(session, model=model, run={"format": fmt, "backend": "hf"},
                           results=results)


def render_seconds(url: str) -> float:
    from streamlit.testing.v1 import AppTest

    os.environ["IMHI_DB_URL"] = url
    at = AppTest.from_file(APP, default_timeout=120)
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"app failed: {at.exception[0].message}")
    if not at.dataframe:
        raise SystemExit("app rendered no table")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="10,1000")
    args = ap.parse_args()
    sizes = [int(x) for x in args.models.split(",")]
    with tempfile.TemporaryDirectory(prefix="imhi-bench-lb-") as tmp:
        run(sizes, Path(tmp), args.repeat)


def run(sizes: list[int], tmp: Path, repeat: int) -> None:
    import streamlit as st

    urls = {}
    for n in sizes:
        urls[n] = f"sqlite:///{tmp / f'models{n}.sqlite'}"
        t0 = time.perf_counter()
        seed(urls[n], n)
        print(f"seeded {n} models x 27 result rows in {time.perf_counter() - t0:.1f} s")

    render_seconds(urls[sizes[0]])  # warm up imports and Streamlit itself
    cold, warm = {}, {}
    for n in sizes:
        times = []
        for _ in range(repeat):
            st.cache_data.clear()
            st.cache_resource.clear()
            times.append(render_seconds(urls[n]))
        cold[n] = statistics.median(times)
        warm[n] = statistics.median(render_seconds(urls[n]) for _ in range(repeat))
    for n in sizes:
        print(f"{n:>5} models: cold {cold[n]:.3f} s, warm {warm[n]:.3f} s (medians of "
              f"{repeat})")
    small, big = sizes[0], sizes[-1]
    print(f"ratio {big}/{small} models: cold {cold[big] / cold[small]:.2f}x, "
          f"warm {warm[big] / warm[small]:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
