"""Reading back what paired comparisons need from the store: each run's labels per sample
(gold label and the label read, by set and doc id) and its provenance.  `imhi-bench compare`
and the leaderboard's rank bands read runs through here.

The labels come one row per (run, set), the set's doc ids, gold labels and labels read each
aggregated into one string by the database along the (run_id, set_name) index: a hundred
runs of 8,169 samples are 800 result rows rather than 817,000 (fetched row by row, those
were most of the leaderboard's band time).
"""

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


# Separators no label contains: between aggregated labels, and for "no label" (NULL).
_SEP, _NULL = "\x1f", "\x1e"


def _split(joined: str) -> np.ndarray:
    values = np.array(joined.split(_SEP), dtype=object)
    values[values == _NULL] = None
    return values


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
    out: RunLabels = {}
    joined = (func.aggregate_strings(cast(Sample.doc_id, String), ","),
              func.aggregate_strings(func.coalesce(Sample.gold_label, _NULL), _SEP),
              func.aggregate_strings(func.coalesce(Sample.label, _NULL), _SEP))
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (select(Sample.run_id, Sample.set_name, *joined)
                     .where(Sample.run_id.in_(ids[start:start + _CHUNK]),
                            Sample.gold_label.is_not(None))
                     .group_by(Sample.run_id, Sample.set_name))
            if sets is not None:
                query = query.where(Sample.set_name.in_(list(sets)))
            for run_id, set_name, doc_ids, gold, label in conn.execute(query):
                found = _doc_ids(doc_ids)
                if len(found) != len(doc_ids.split(",")):  # a damaged doc id: left out
                    keep = np.array([p.strip().lstrip("-").isdigit()
                                     for p in doc_ids.split(",")])
                    gold_v, label_v = _split(gold)[keep], _split(label)[keep]
                else:
                    gold_v, label_v = _split(gold), _split(label)
                order = np.argsort(found, kind="stable")
                out.setdefault(run_id, {})[set_name] = SetLabels(
                    found[order], gold_v[order], label_v[order])
    return out


def run_provenance(engine: Engine, run_id: int) -> dict | None:
    """The run's provenance ({} when none was recorded), its protocol the one the store
    keeps for it where the provenance has none (a run recorded before protocols); None
    when there is no such run."""
    with engine.connect() as conn:
        row = conn.execute(select(raw(Run.provenance), raw(Run.protocol))
                           .where(Run.id == int(run_id))).first()
    if row is None:
        return None
    prov = read_json(row[0])[0]  # a damaged row's (not JSON): none recorded
    prov = dict(prov) if isinstance(prov, dict) else {}
    protocol = read_json(row[1])[0]
    if not isinstance(prov.get("protocol"), dict) and isinstance(protocol, dict):
        prov["protocol"] = protocol
    return prov
