"""Reading back what paired comparisons need from the store: each run's labels per sample
(gold label and the label read, by set and doc id) and its provenance.  `imhi-bench compare`
and the leaderboard's rank bands and compare page read runs through here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from imhi_bench.store.tables import Run, Sample

# run id -> set -> doc id -> (gold label, label read; None = unreadable)
RunLabels = dict[int, dict[str, dict[int, tuple[str, str | None]]]]
_CHUNK = 500  # run ids per IN (...) list


def run_labels(engine: Engine, run_ids: Iterable[int],
               sets: Sequence[str] | None = None) -> RunLabels:
    """The stored samples' labels of `run_ids` (only `sets`, if given); a run with no
    stored samples is absent."""
    ids = sorted({int(i) for i in run_ids})
    out: RunLabels = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = select(Sample.run_id, Sample.set_name, Sample.doc_id, Sample.gold_label,
                           Sample.label).where(Sample.run_id.in_(ids[start:start + _CHUNK]))
            if sets is not None:
                query = query.where(Sample.set_name.in_(list(sets)))
            for run_id, set_name, doc_id, gold, label in conn.execute(query):
                if gold is None:  # not judged: nothing to compare
                    continue
                out.setdefault(run_id, {}).setdefault(set_name, {})[doc_id] = (gold, label)
    return out


def run_provenance(engine: Engine, run_id: int) -> dict | None:
    """The run's provenance ({} when none was recorded), or None when there is no such run."""
    with engine.connect() as conn:
        row = conn.execute(select(Run.provenance).where(Run.id == int(run_id))).first()
    if row is None:
        return None
    return row[0] if isinstance(row[0], dict) else {}
