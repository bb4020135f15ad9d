"""The leaderboard table's filters: what a user narrows it to (search, type, size, training
data, format, source), and the choices offered, from every finished run.  Plain substring
search in pandas: what a user types never reaches SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

UNKNOWN = "unknown"


def filter_options(runs: pd.DataFrame) -> dict[str, list]:
    """Choices for the table's filters, from every finished run (so they do not shift when
    the set group changes): type, training data, format, source, and size bounds (B)."""
    def values(col: str) -> list[str]:
        return sorted(str(v) for v in runs[col].fillna(UNKNOWN).unique())

    sizes = (runs["params"] / 1e9).dropna()
    return {
        "type": values("type"),
        "training data": values("training_data"),
        "format": values("format"),
        "source": [s for s in ("reported", "reproduced") if (runs["source"] == s).any()],
        "size": [float(sizes.min()), float(sizes.max())] if len(sizes) else [],
    }


@dataclass
class Filters:
    """What the user chose; None or an empty choice means "no restriction"."""

    search: str = ""
    types: Sequence[str] | None = None
    size_range: tuple[float, float] | None = None  # billions of parameters, inclusive
    include_unknown_size: bool = True
    training_data: Sequence[str] | None = None
    formats: Sequence[str] | None = None
    sources: Sequence[str] | None = None


def filter_table(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    keep = pd.Series(True, index=table.index)
    query = filters.search.strip()
    if query:
        # Plain substring match (regex=False): the text is data, never a pattern or SQL.
        hit = pd.Series(False, index=table.index)
        for col in ("model", "path", "base model"):
            hit |= table[col].fillna("").astype(str).str.contains(query, case=False,
                                                                  regex=False)
        keep &= hit
    for col, chosen in (("type", filters.types), ("training data", filters.training_data),
                        ("format", filters.formats), ("source", filters.sources)):
        if chosen:
            keep &= table[col].isin(list(chosen))
    size = table["size (B)"]
    if filters.size_range is not None:
        lo, hi = filters.size_range
        in_range = size.between(lo, hi)
        keep &= in_range | (size.isna() & filters.include_unknown_size)
    elif not filters.include_unknown_size:
        keep &= size.notna()
    return table[keep]
