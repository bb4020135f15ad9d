"""Scoring generations that already exist (`imhi-bench score`): a run folder, lm-eval's
samples, or MentaLLaMA's IMHI.py output, read by `imhi_bench.runs.folder` and scored by the
same pipeline as `imhi-bench eval`.

Reading (`read_predictions`, quick: every file is checked here) and scoring (which may run
quality models for minutes) are separate steps, so a command can check its other inputs,
the results store say, between the two."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark.data import identify_file
from imhi_bench.runs.folder import load_predictions
from imhi_bench.scoring.pipeline import ScoredRun, SetInput, score_run


@dataclass
class Predictions:
    """Every set's generations under a path, ready to score."""

    inputs: dict[str, SetInput]
    provenance: dict


def read_predictions(path: str | os.PathLike,
                     data_dir: str | os.PathLike | None = None) -> Predictions:
    """Read and check the predictions under `path`; each set's provenance names the
    predictions file and the released data file its gold responses come from."""
    inputs = {}
    for name, pf in load_predictions(path).items():
        rows = [(r.doc_id, r.gold, r.generation, r.prompt) for r in pf.rows]
        inputs[name] = SetInput(rows, {
            "predictions_file": str(pf.path.resolve()),
            "predictions_sha256": pf.sha256,
            **identify_file(name, [r.gold for r in pf.rows], data_dir),
        }, where=pf.path.name)
    return Predictions(inputs, {"source": "score", "predictions": str(Path(path).resolve()),
                                **_prompt_provenance(path)})


# What a run folder's own results say about how its generations were made: re-scoring keeps
# the prompt and decoding of its protocol (only the reader and metrics are re-done).
_CARRIED = ("generation", "fewshot", "tasks")


def _prompt_provenance(path: str | os.PathLike) -> dict:
    import json

    from imhi_bench.runs.folder import RESULTS_FILE

    file = Path(path) / RESULTS_FILE
    try:
        prov = json.loads(file.read_text("utf-8")).get("provenance") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: prov[k] for k in _CARRIED if isinstance(prov, dict) and prov.get(k)}


def score_predictions(
    path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    quality=None,
    predictions: Predictions | None = None,
) -> ScoredRun:
    """The score JSON of every set's predictions under `path` (or of `predictions`, already
    read from it by `read_predictions`)."""
    if predictions is None:
        predictions = read_predictions(path, data_dir)
    return score_run(predictions.inputs, dict(predictions.provenance), seed=seed,
                     n_boot=bootstrap, quality=quality)


def read_run_labels(path: str | os.PathLike,
                    data_dir: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """(set -> doc id -> (gold label, label read), provenance) of the generations under
    `path` (anything `read_predictions` reads), for a paired comparison
    (`scoring.compare`): labels read by the rules, as `imhi-bench score` reads them.  The
    provenance is the run folder's results file's; without one (an IMHI.py CSV folder),
    what `score` would record for these generations, its protocol included ("prompts
    unknown": nothing says how they were made)."""
    import json

    from imhi_bench.core.errors import ImhiError
    from imhi_bench.runs.folder import RESULTS_FILE
    from imhi_bench.scoring.pipeline import label_samples
    from imhi_bench.scoring.protocol import protocol_json, run_protocol

    predictions = read_predictions(path, data_dir)
    labels = {}
    for name, inp in predictions.inputs.items():
        samples = label_samples(name, inp.rows, where=inp.where)
        labels[name] = {s.doc_id: (s.gold_label, s.label) for s in samples}
    where = Path(path).expanduser()
    results = (where if where.is_dir() else where.parent) / RESULTS_FILE
    if not results.is_file():
        prov = {**predictions.provenance,
                "sets": {name: inp.provenance for name, inp in predictions.inputs.items()}}
        return labels, {**prov, "protocol": protocol_json(run_protocol(prov))}
    try:
        report = json.loads(results.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ImhiError(f"cannot read {results} ({type(e).__name__}): fix or remove it to "
                        "compare the run's generations without its provenance") from None
    prov = report.get("provenance") if isinstance(report, dict) else None
    return labels, prov if isinstance(prov, dict) else {}
