"""Stored values that cannot be read (a damaged row: a date that is no date, JSON that does
not parse, a parameter count or score that is text): each is shown as missing ("–" on the
pages, an empty CSV cell) and counted in one line, so one bad row never takes a page down.
The values are read by `store.readback`; this module marks and counts them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

# A column of the runs and scores frames (`data.load_runs`, `data.load_scores`, and
# `run_data.run_results` when any value is unreadable): per row, the fields whose stored
# value could not be read, comma-separated ("" for none).
UNREADABLE = "unreadable"
_LISTED = 5  # runs named in a note; the rest are counted


def read_columns(frame: pd.DataFrame,
                 readers: dict[str, Callable[[Any], tuple[Any, bool]]],
                 prefix: str | None = None) -> pd.DataFrame:
    """`frame` with each column of `readers` read by its reader (unreadable -> None) and
    the UNREADABLE column naming, per row, the columns that could not be read (each
    after that row's value of column `prefix`, e.g. its set name)."""
    out = frame.copy()
    before = [""] * len(frame) if prefix is None else [f"{v} " for v in frame[prefix]]
    bad: list[list[str]] = [[] for _ in range(len(frame))]
    for col, reader in readers.items():
        # a frame holds a missing text as NaN (pandas' string dtype): nothing stored
        pairs = [reader(None if isinstance(v, float) and math.isnan(v) else v)
                 for v in frame[col]]
        out[col] = pd.Series([v for v, _ in pairs], index=frame.index, dtype=object)
        for i, (_, ok) in enumerate(pairs):
            if not ok:
                bad[i].append(before[i] + col)
    out[UNREADABLE] = [", ".join(b) for b in bad]
    return out


def _by_run(*frames: pd.DataFrame) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for frame in frames:
        if UNREADABLE not in frame:
            continue
        for run_id, what in zip(frame["run_id"], frame[UNREADABLE], strict=True):
            if what:
                found.setdefault(int(run_id), []).append(what)
    return found


def store_note(runs: pd.DataFrame, scores: pd.DataFrame) -> str:
    """One line counting the runs with unreadable stored values, naming the first few and
    what in them; "" when there is none."""
    found = _by_run(runs, scores)
    if not found:
        return ""
    named = [f"run {r} ({', '.join(found[r])})" for r in sorted(found)[:_LISTED]]
    more = f" and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
    n = len(found)
    return (f"{n} run{'' if n == 1 else 's'} in the store hold{'s' if n == 1 else ''} values "
            f"that cannot be read (damaged rows), shown as missing (–): {'; '.join(named)}"
            f"{more}. The rest of each row is shown as stored.")


def run_note(fields: Sequence[str], metrics: pd.DataFrame) -> str:
    """One line naming one run's unreadable stored values (`fields` of the run and its
    model, and any in its per-set `metrics`); "" when there is none."""
    what = list(fields)
    if UNREADABLE in metrics:
        what += [w for w in metrics[UNREADABLE] if w]
    if not what:
        return ""
    return ("Stored values of this run that cannot be read (a damaged row), shown as "
            f"missing (–): {', '.join(what)}.")
