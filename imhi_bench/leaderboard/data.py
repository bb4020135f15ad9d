"""The leaderboard's main table as pandas frames: the store queries behind it and its
shaping, filtering, sorting and CSV, kept apart from Streamlit so they can be tested
directly (the app, `imhi_bench.leaderboard.app`, only lays them out).  One run's page and
the compare page read `imhi_bench.leaderboard.run_data`; the queue page
`imhi_bench.leaderboard.queue_data`.

Two queries fetch every finished run and every per-set result; the table is built and
filtered in pandas, so what a user types (search) never reaches SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from imhi_bench.benchmark.sets import SET_NAMES, UNSEEN_SETS
from imhi_bench.store.tables import Model, Run, SetResult

# Which sets the per-set columns and the mean cover.
SET_GROUPS: dict[str, tuple[str, ...]] = {
    "all sets": SET_NAMES,
    "unseen tasks (paper Table 3)": UNSEEN_SETS,
}
UNKNOWN = "unknown"

# Main table columns besides the per-set ones, in display order.
MEAN_COLUMN = "mean weighted F1"
INFO_COLUMNS: tuple[str, ...] = (
    "model", "source", "type", "size (B)", "training data", "format", "setting",
    MEAN_COLUMN, "sets scored", "mean BART-score", "date",
    "path", "revision", "base model", "precision", "license", "backend", "run_id",
)
DEFAULT_HIDDEN: tuple[str, ...] = ("path", "revision", "base model", "precision", "license",
                                   "backend", "run_id")
TEXT_COLUMNS: tuple[str, ...] = ("model", "source", "type", "training data", "format",
                                 "setting", "date", "path", "revision", "base model",
                                 "precision", "license", "backend")


# --------------------------------------------------------------------------- loading


def rows_frame(rows: Sequence, columns: Sequence[str]) -> pd.DataFrame:
    """Query rows as a frame with `columns`."""
    # Column-wise: several times faster than pd.DataFrame(list of Row objects).
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pd.DataFrame({c: list(v) for c, v in zip(columns, values, strict=True)},
                        columns=list(columns))


def store_fingerprint(engine: Engine) -> tuple:
    """Changes whenever a run is recorded, removed or (reported rows) reloaded: the key the
    app caches its frames under."""
    query = select(
        func.count(Run.id), func.max(Run.id),
        select(func.max(SetResult.id)).scalar_subquery(),
        select(func.max(Model.id)).scalar_subquery(),
    )
    with engine.connect() as conn:
        return tuple(conn.execute(query).one())


def load_runs(engine: Engine) -> pd.DataFrame:
    """One row per finished run, with its model's fields."""
    query = (
        select(
            Run.id.label("run_id"), Model.id.label("model_id"), Model.name.label("model"),
            Model.path, Model.revision, Model.type, Model.params, Model.precision,
            Model.base_model, Model.license, Model.training_data, Run.source, Run.reference,
            Run.backend, Run.format, Run.setting, Run.finished_at, Run.recorded_at,
        )
        .join(Model, Run.model_id == Model.id)
        .where(Run.status == "finished")
        .order_by(Run.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = rows_frame(rows, [
        "run_id", "model_id", "model", "path", "revision", "type", "params", "precision",
        "base_model", "license", "training_data", "source", "reference", "backend", "format",
        "setting", "finished_at", "recorded_at",
    ])
    frame["params"] = pd.to_numeric(frame["params"], errors="coerce").astype("float64")
    for col in ("finished_at", "recorded_at"):  # one unit, even when a column is all null
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    return frame


SCORE_COLUMNS: tuple[str, ...] = ("run_id", "set", "weighted_f1", "bart_score")


def load_scores(engine: Engine) -> pd.DataFrame:
    """Weighted F1 and BART-score of every set of every finished run: all the main table
    needs (the other metrics are read per run, by `run_results`)."""
    query = (
        select(SetResult.run_id, SetResult.set_name, SetResult.weighted_f1,
               SetResult.bart_score)
        .join(Run, SetResult.run_id == Run.id)
        .where(Run.status == "finished")
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = rows_frame(rows, SCORE_COLUMNS)
    for col in SCORE_COLUMNS[2:]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


# --------------------------------------------------------------------------- main table


def size_label(params: float | None) -> str:
    """13e9 -> "13B", 1.25e8 -> "125M"; unknown -> ""."""
    if params is None or not math.isfinite(params):
        return ""
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"


def run_label(row: pd.Series | dict) -> str:
    """How a run is named in pickers: model (revision), source, format, setting, run id."""
    parts = [str(row["model"])]
    if row.get("revision"):
        parts.append(f"@{row['revision']}")
    detail = [str(row["source"])] + [str(row[k]) for k in ("format", "setting") if row.get(k)]
    return f"{' '.join(parts)} ({', '.join(detail)}; run {int(row['run_id'])})"


def leaderboard_table(
    runs: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    sets: Sequence[str] = SET_NAMES,
    latest_only: bool = True,
) -> pd.DataFrame:
    """One row per run: model fields, weighted F1 per set in `sets`, their mean and the
    mean BART-score over the sets the run scored.  Runs that scored none of `sets` are left
    out.  `latest_only` keeps the newest run per model, source, format and setting."""
    sets = list(sets)
    if latest_only and not runs.empty:
        newest = runs["finished_at"].fillna(runs["recorded_at"])
        runs = (runs.assign(_when=newest)
                .sort_values(["_when", "run_id"], ascending=False)
                .drop_duplicates(["model_id", "source", "format", "setting"])
                .drop(columns="_when"))
    chosen = scores[scores["set"].isin(sets) & scores["run_id"].isin(runs["run_id"])]
    wide = chosen.pivot(index="run_id", columns="set", values="weighted_f1")
    wide = wide.reindex(columns=sets).astype("float64")
    scored = wide.notna().sum(axis=1)
    bart = chosen.groupby("run_id")["bart_score"].mean()

    table = runs.set_index("run_id")
    table = table.loc[table.index.intersection(scored[scored > 0].index)]
    out = pd.DataFrame({
        "model": table["model"],
        "source": table["source"],
        "type": table["type"].fillna(UNKNOWN),
        "size (B)": table["params"] / 1e9,
        "training data": table["training_data"].fillna(UNKNOWN),
        "format": table["format"].fillna(UNKNOWN),
        "setting": table["setting"].fillna(""),
        MEAN_COLUMN: wide.loc[table.index].mean(axis=1, skipna=True).round(2),
        "sets scored": scored.loc[table.index].astype("int64"),
        "mean BART-score": bart.reindex(table.index).round(3),
        "date": table["finished_at"].dt.strftime("%Y-%m-%d"),
        "path": table["path"],
        "revision": table["revision"],
        "base model": table["base_model"],
        "precision": table["precision"],
        "license": table["license"],
        "backend": table["backend"],
    }, index=table.index)
    out = out.join(wide.loc[table.index])
    out.index.name = "run_id"
    out = out.sort_values([MEAN_COLUMN, "model"], ascending=[False, True], na_position="last")
    return out.reset_index()


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


def sort_table(table: pd.DataFrame, by: str, descending: bool = True) -> pd.DataFrame:
    if by not in table.columns:
        return table
    return table.sort_values(by, ascending=not descending, na_position="last", kind="stable")


def visible_columns(chosen_info: Sequence[str], sets: Sequence[str]) -> list[str]:
    """The info columns chosen, in display order, with the per-set columns right after the
    mean (so the scores are on screen without scrolling)."""
    cut = INFO_COLUMNS.index(MEAN_COLUMN) + 1
    lead = [c for c in INFO_COLUMNS[:cut] if c in chosen_info]
    trail = [c for c in INFO_COLUMNS[cut:] if c in chosen_info]
    return lead + list(sets) + trail


def _defuse_formula(value):
    # A cell starting with = + - @ is run as a formula by spreadsheet programs (CSV
    # injection): a model name is user data, so such text gets a leading apostrophe.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    safe = table.copy()
    for col in safe.columns:
        if col in TEXT_COLUMNS:
            safe[col] = safe[col].map(_defuse_formula)
    return safe.to_csv(index=False).encode("utf-8")
