"""The main table's rank band column (`scoring.bands`), from the store's per-sample labels.

Banded: the ranked rows (complete runs) that have a mean over the table's sets and whose
samples are stored for every one of them: reproduced runs.  They are banded among
themselves, on the doc ids all of them scored.  Reported rows (the paper's numbers) have
no samples and no band; nor have unranked (partial) rows or a row without stored samples:
their cell is empty ("–" on the page), and `BAND_NOTE` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from imhi_bench.leaderboard.data import BAND_COLUMN, MEAN_COLUMN, RANKED
from imhi_bench.scoring.bands import METHOD, rank_bands
from imhi_bench.store.labels import RunLabels, run_labels

BAND_NOTE = (
    f"'{BAND_COLUMN}': the ranks a row could take, given the test sets' noise: 1 + the rows "
    f"significantly better than it, to the number of rows not significantly worse ({METHOD}); "
    "rows that cannot be told apart share ranks; rows are banded among the rows of their own "
    "protocol. Only reproduced runs with stored samples have one: the paper's reported rows "
    "(no samples) and unranked rows show –.")


def aligned(labels: RunLabels, sets: Sequence[str]) -> dict:
    """run id -> set -> (gold, labels read) over the doc ids every run scored, in doc id
    order (what `rank_bands` takes)."""
    out: dict = {run_id: {} for run_id in labels}
    for name in sets:
        shared = reduce(np.intersect1d, (per_set[name].doc_ids for per_set in labels.values()))
        for run_id, per_set in labels.items():
            rows = per_set[name]
            keep = slice(None) if len(rows.doc_ids) == len(shared) else \
                np.isin(rows.doc_ids, shared)
            out[run_id][name] = (rows.gold[keep], rows.label[keep])
    return out


def _bands_among(engine: Engine, run_ids: pd.Series, sets: Sequence[str]) -> dict[int, str]:
    labels = run_labels(engine, run_ids.astype(int), sets)
    labels = {run_id: per_set for run_id, per_set in labels.items()
              if all(name in per_set for name in sets)}
    if not labels:
        return {}
    runs = aligned(labels, sets)
    if not all(len(runs[next(iter(runs))][name][0]) for name in sets):
        return {}  # no doc id of some set scored by all: nothing to compare on
    return {run_id: band.text for run_id, band in rank_bands(runs, list(sets)).items()}


def band_texts(engine: Engine, table: pd.DataFrame, sets: Sequence[str]) -> dict[int, str]:
    """run id -> band ("1–3") of the rows of a `leaderboard_table` frame that get one; in a
    table mixing protocols, rows are banded among the rows of their own protocol."""
    eligible = table[table[RANKED].astype(bool) & table[MEAN_COLUMN].notna()
                     & (table["source"] == "reproduced")]
    protocol = eligible["protocol"] if "protocol" in eligible else \
        pd.Series("", index=eligible.index)
    out: dict[int, str] = {}
    for _, group in eligible.groupby(protocol.fillna(""), sort=False):
        out.update(_bands_among(engine, group["run_id"], sets))
    return out


def with_rank_bands(engine: Engine, table: pd.DataFrame, sets: Sequence[str]) -> pd.DataFrame:
    """`table` (a `leaderboard_table` frame) with its rank band column, after the ranked
    flag is known and before any filter, so a search never changes a row's band."""
    texts = band_texts(engine, table, sets) if not table.empty else {}
    out = table.copy()
    out[BAND_COLUMN] = [texts.get(int(r)) for r in table["run_id"]]
    return out
