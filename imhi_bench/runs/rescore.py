"""Scoring generations that already exist (`imhi-bench score`): a run folder, lm-eval's
samples, or MentaLLaMA's IMHI.py output, read by `imhi_bench.runs.folder` and scored by the
same pipeline as `imhi-bench eval`."""

from __future__ import annotations

import os
from pathlib import Path

from imhi_bench.benchmark.data import identify_file
from imhi_bench.runs.folder import load_predictions
from imhi_bench.scoring.pipeline import ScoredRun, SetInput, score_run


def score_predictions(
    path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    quality=None,
) -> ScoredRun:
    """The score JSON of every set's predictions under `path`; each set's provenance names
    the predictions file and the released data file its gold responses come from."""
    inputs = {}
    for name, pf in load_predictions(path).items():
        rows = [(r.doc_id, r.gold, r.generation, r.prompt) for r in pf.rows]
        inputs[name] = SetInput(rows, {
            "predictions_file": str(pf.path.resolve()),
            "predictions_sha256": pf.sha256,
            **identify_file(name, [r.gold for r in pf.rows], data_dir),
        }, where=pf.path.name)
    provenance = {"source": "score", "predictions": str(Path(path).resolve())}
    return score_run(inputs, provenance, seed=seed, n_boot=bootstrap, quality=quality)
