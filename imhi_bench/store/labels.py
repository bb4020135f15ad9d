"""Reading back what paired comparisons need from the store: each run's labels per sample
(gold label and the label read, by set and doc id) and its provenance.  `imhi-bench compare`
and the leaderboard's rank bands read runs through here.

The labels come grouped by confusion cell (run, set, gold label, label read) with the cell's
doc ids aggregated in the database, so a hundred runs of 8,169 samples cost a few thousand
result rows rather than 817,000 (the row-by-row fetch was most of the leaderboard's band
time)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import String, cast, func, select
from sqlalchemy.engine import Engine

from imhi_bench.store.readback import raw, read_json
from imhi_bench.store.tables import Run, Sample

_CHUNK = 500  # run ids per IN (...) list


@dataclass
class SetLabels:
    """One run's samples of one set, in doc id order."""

    doc_ids: np.ndarray  # int64, sorted
    gold: np.ndarray  # object: gold labels
    label: np.ndarray  # object: labels read; None = unreadable

    def as_dict(self) -> dict[int, tuple[str, str | None]]:
        """doc id -> (gold label, label read), as `scoring.compare.compare_runs` takes it."""
        return dict(zip(self.doc_ids.tolist(),
                        zip(self.gold.tolist(), self.label.tolist(), strict=True), strict=True))


RunLabels = dict[int, dict[str, SetLabels]]  # run id -> set -> labels


def _assemble(cells: list[tuple[str, str | None, np.ndarray]]) -> SetLabels:
    ids = np.concatenate([c[2] for c in cells])
    gold = np.concatenate([np.full(len(c[2]), c[0], dtype=object) for c in cells])
    label = np.concatenate([np.full(len(c[2]), c[1], dtype=object) for c in cells])
    order = np.argsort(ids, kind="stable")
    return SetLabels(ids[order], gold[order], label[order])


def _doc_ids(joined: str) -> np.ndarray:
    try:
        return np.array(joined.split(","), dtype=np.int64)
    except ValueError:  # a damaged row's doc id ("x", 1.5): that sample is left out
        return np.array([int(p) for p in joined.split(",") if p.strip().lstrip("-").isdigit()],
                        dtype=np.int64)


def run_labels(engine: Engine, run_ids: Iterable[int],
               sets: Sequence[str] | None = None) -> RunLabels:
    """The stored samples' labels of `run_ids` (only `sets`, if given); a run with no
    stored samples is absent, and samples with no gold label are left out."""
    ids = sorted({int(i) for i in run_ids})
    cells: dict[tuple[int, str], list] = {}
    doc_ids = func.aggregate_strings(cast(Sample.doc_id, String), ",")
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (select(Sample.run_id, Sample.set_name, Sample.gold_label, Sample.label,
                            doc_ids)
                     .where(Sample.run_id.in_(ids[start:start + _CHUNK]),
                            Sample.gold_label.is_not(None))
                     .group_by(Sample.run_id, Sample.set_name, Sample.gold_label,
                               Sample.label))
            if sets is not None:
                query = query.where(Sample.set_name.in_(list(sets)))
            for run_id, set_name, gold, label, joined in conn.execute(query):
                found = _doc_ids(joined)
                cells.setdefault((run_id, set_name), []).append((gold, label, found))
    out: RunLabels = {}
    for (run_id, set_name), parts in cells.items():
        out.setdefault(run_id, {})[set_name] = _assemble(parts)
    return out


def run_provenance(engine: Engine, run_id: int) -> dict | None:
    """The run's provenance ({} when none was recorded), or None when there is no such run."""
    with engine.connect() as conn:
        row = conn.execute(select(raw(Run.provenance)).where(Run.id == int(run_id))).first()
    if row is None:
        return None
    provenance = read_json(row[0])[0]  # a damaged row's (not JSON): none recorded
    return provenance if isinstance(provenance, dict) else {}
