"""What lm-eval calls for every IMHI task, through the `utils.py` shim beside the YAMLs
(lm-eval resolves `!function utils.<name>` there):

- `load_dataset` (custom_dataset): rows through `imhi_bench.benchmark.data.load_examples`, so
  the data dir is `$IMHI_DATA_DIR` (or the `imhi_data_dir` task metadata), never the
  working directory, and a missing file raises the same guidance as `imhi-bench data check`;
  it also settles bart_score's model and puts it, and the data dir, in each doc;
- `process_results`: reads the label of one generation with `imhi_bench.scoring.labels`;
- `weighted_f1`, `macro_f1`, `count`, `mean_bart_score`: corpus-level aggregations through
  `imhi_bench.scoring.metrics` and the BART-score module.

The few-shot hooks (`DemoSampler`, `demonstration_docs`) are in `imhi_bench.tasks.fewshot`.

Every metric but bart_score is in percent, as the paper and the score JSON report them;
bart_score is a mean log-likelihood per token (<= 0, higher is better).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterable

from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.quality.bart_model import check_bart_model
from imhi_bench.scoring.quality.table import DEFAULT_BART_MODEL
from imhi_bench.tasks.names import (
    BART_CHECKPOINT_METADATA,
    BART_MODEL_ENV,
    BART_MODEL_METADATA,
    BART_OFF,
    DATA_DIR_METADATA,
)

# A child of lm-eval's logger: under `lm_eval` the note prints like lm-eval's own warnings;
# `imhi-bench eval`, which turns bart_score off on purpose without --quality bart, silences
# lm-eval's logging and so this note too.
_log = logging.getLogger("lm_eval.imhi")

# A bart_score item: (generation, gold response, BART model, checkpoint or None).
BartItem = tuple[str, str, str, str | None]


def bart_model_setting(metadata: dict) -> tuple[str, str | None]:
    """(model, checkpoint) of bart_score: the task metadata, else $IMHI_BART_MODEL, else
    the paper's default; checked now (before any generation) unless it is "none"."""
    model = str(metadata.get(BART_MODEL_METADATA) or "").strip()
    given_by = f"task metadata {BART_MODEL_METADATA}"
    if not model:
        model = os.environ.get(BART_MODEL_ENV, "").strip()
        given_by = BART_MODEL_ENV
    if not model:
        model, given_by = DEFAULT_BART_MODEL, f"{BART_MODEL_ENV} (unset: the default)"
    if model.lower() == BART_OFF:
        return BART_OFF, None
    checkpoint = str(metadata.get(BART_CHECKPOINT_METADATA) or "").strip() or None
    try:
        check_bart_model(model, checkpoint, given_by=given_by)
    except ImhiError as e:
        raise ImhiError(f"{e} ({BART_MODEL_ENV}=none turns bart_score off)") from None
    return model, checkpoint


def load_dataset(imhi_set: str, imhi_format: str, **metadata):
    """custom_dataset hook: the set's released test file as a one-split DatasetDict.

    lm-eval passes the task metadata (and, from its CLI, the model args) as keyword
    arguments too; `imhi_data_dir`, `imhi_bart_model` and `imhi_bart_checkpoint` are
    read from them."""
    import datasets

    from imhi_bench.benchmark.data import load_examples

    data_dir = metadata.get(DATA_DIR_METADATA) or None
    examples = load_examples(imhi_set, imhi_format, data_dir)
    # lm-eval's aggregations see only the per-sample values, so each doc carries the model
    # its bart_score item must name.
    bart_model, bart_checkpoint = bart_model_setting(metadata)
    rows = {
        "doc_id": [e.doc_id for e in examples],
        "set": [e.set for e in examples],
        "format": [e.fmt for e in examples],
        "query": [e.query for e in examples],
        "gold": [e.gold for e in examples],
        "bart_model": [bart_model] * len(examples),
        "bart_checkpoint": [bart_checkpoint or ""] * len(examples),
        # where the few-shot pool is read from (tasks.fewshot.demonstration_docs)
        DATA_DIR_METADATA: [str(data_dir or "")] * len(examples),
    }
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


def process_results(doc: dict, results: list[str]) -> dict:
    """Per-sample metrics: (gold, predicted) pairs for the F1s, 0 or 100 for accuracy (its
    mean is then in percent), 0/1 for unparseable, and a `BartItem` (None when off)."""
    from imhi_bench.scoring.labels.gold import gold_label
    from imhi_bench.scoring.labels.reader import extract_label

    generation = results[0] if results and isinstance(results[0], str) else ""
    gold = gold_label(doc["set"], doc["gold"], where=f"{doc['set']} row {doc['doc_id'] + 1}")
    pred = extract_label(doc["set"], generation)
    bart_model = doc.get("bart_model") or BART_OFF
    return {
        "weighted_f1": (gold, pred),
        "accuracy": 100.0 if pred == gold else 0.0,
        "macro_f1": (gold, pred),
        "unparseable": int(pred is None),
        "bart_score": None if bart_model == BART_OFF else (
            generation, doc["gold"], bart_model, doc.get("bart_checkpoint") or None),
    }


def _f1(items: Iterable[tuple[str, str | None]], average: str) -> float:
    m = _scores(tuple(tuple(x) for x in items))
    return m.weighted_f1 if average == "weighted" else m.macro_f1


@functools.lru_cache(maxsize=4)
def _scores(pairs: tuple[tuple[str, str | None], ...]):
    """One metrics computation serves both F1 aggregations of a task."""
    from imhi_bench.scoring.metrics import score_set

    return score_set([g for g, _ in pairs], [p for _, p in pairs], n_boot=0)


def weighted_f1(items: Iterable[tuple[str, str | None]]) -> float:
    """Weighted F1 (percent) over the gold classes; unparseable counts as wrong."""
    return _f1(items, "weighted")


def macro_f1(items: Iterable[tuple[str, str | None]]) -> float:
    return _f1(items, "macro")


def count(items: Iterable[int]) -> int:
    return int(sum(items))


@functools.cache
def _warn_bart_off() -> None:
    _log.warning(
        "bart_score is off (%s or the task metadata %s is 'none'), so its value is NaN: set it "
        "to a BART folder or hub id (default %s) to compute it", BART_MODEL_ENV,
        BART_MODEL_METADATA, DEFAULT_BART_MODEL)


def mean_bart_score(items: Iterable[BartItem | None]) -> float:
    """Mean BART-score of a task's (generation, gold) pairs, all scored at once in batches
    by the BART-score module, which keeps them for imhi-bench's quality step; NaN (and a
    one-line note) when bart_score is off."""
    from imhi_bench.scoring.quality.bart_score import cached_bart_scores

    pairs: dict[tuple[str, str | None], tuple[list[str], list[str]]] = {}
    for item in items:
        if item is not None:
            generation, gold, model, checkpoint = item
            gens, golds = pairs.setdefault((model, checkpoint), ([], []))
            gens.append(generation)
            golds.append(gold)
    if not pairs:
        _warn_bart_off()
        return math.nan
    values = [v for (model, checkpoint), (gens, golds) in pairs.items()
              for v in cached_bart_scores(gens, golds, model=model, checkpoint=checkpoint)]
    return math.fsum(values) / len(values)
