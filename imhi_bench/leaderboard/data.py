"""What the leaderboard shows, as pandas frames: queries on the store and the shaping,
filtering and sorting of the main table, kept apart from Streamlit so they can be tested
directly (the app, `imhi_bench.leaderboard.app`, only lays them out).

Two queries fetch every finished run and every per-set result; the table is built and
filtered in pandas, so what a user types (search) never reaches SQL.  The sample browser
queries per page, with bound parameters only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from imhi_bench.benchmark.sets import SET_NAMES, UNSEEN_SETS
from imhi_bench.store.db import Model, Prompt, Run, Sample, SetResult

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


def _frame(rows: Sequence, columns: Sequence[str]) -> pd.DataFrame:
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
    frame = _frame(rows, [
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
    frame = _frame(rows, SCORE_COLUMNS)
    for col in SCORE_COLUMNS[2:]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


RESULT_COLUMNS: tuple[str, ...] = (
    "set", "weighted_f1", "ci_low", "ci_high", "accuracy", "macro_f1", "unparseable", "n",
    "bart_score", "bertscore_f1", "rouge_l", "consistency", "labeler",
)


def run_results(engine: Engine, run_id: int) -> pd.DataFrame:
    """Every stored metric of one run, one row per set in SET_NAMES order; metric columns
    the run has no value for at all are dropped."""
    query = select(
        SetResult.set_name, SetResult.weighted_f1, SetResult.weighted_f1_lo,
        SetResult.weighted_f1_hi, SetResult.accuracy, SetResult.macro_f1,
        SetResult.unparseable, SetResult.n, SetResult.bart_score, SetResult.bertscore_f1,
        SetResult.rouge_l, SetResult.consistency, SetResult.labeler,
    ).where(SetResult.run_id == run_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = _frame(rows, RESULT_COLUMNS)
    for col in RESULT_COLUMNS[1:-1]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    order = {name: i for i, name in enumerate(SET_NAMES)}
    frame = frame.sort_values("set", key=lambda s: s.map(order)).reset_index(drop=True)
    keep = ["set", "weighted_f1"] + [
        c for c in RESULT_COLUMNS[2:] if frame[c].notna().any()]
    return frame[keep]


def run_details(engine: Engine, run_id: int) -> dict | None:
    """Everything stored about one run and its model (provenance included)."""
    with Session(engine) as session:
        row = session.execute(
            select(Run, Model).join(Model, Run.model_id == Model.id).where(Run.id == run_id)
        ).first()
    if row is None:
        return None
    run, model = row  # loaded attributes stay readable after the session closes
    return {
        "model": {c: getattr(model, c) for c in (
            "name", "path", "revision", "type", "params", "precision", "base_model", "license",
            "training_data")},
        "run": {c: getattr(run, c) for c in (
            "id", "source", "reference", "backend", "tasks", "format", "setting", "status",
            "started_at", "finished_at", "recorded_at")},
        "provenance": run.provenance or {},
        "generation_config": run.generation_config or {},
        "mean": run.mean or {},
    }


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


# --------------------------------------------------------------------------- model page


SAMPLE_COLUMNS: tuple[str, ...] = (
    "set", "doc_id", "gold_label", "label", "correct", "post", "generation", "gold",
    "bart_score", "bertscore_f1", "rouge_l", "consistency",
)


def sample_sets(engine: Engine, run_id: int) -> list[str]:
    with engine.connect() as conn:
        names = conn.scalars(
            select(Sample.set_name).where(Sample.run_id == run_id).distinct()
        ).all()
    order = {name: i for i, name in enumerate(SET_NAMES)}
    return sorted(names, key=lambda n: order.get(n, len(order)))


def load_samples(
    engine: Engine,
    run_id: int,
    *,
    set_name: str | None = None,
    wrong_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of a run's samples (post = the prompt text) and how many match in all.
    `wrong_only` keeps samples marked not correct (unparseable ones included)."""
    conditions = [Sample.run_id == run_id]
    if set_name is not None:
        conditions.append(Sample.set_name == set_name)
    if wrong_only:
        conditions.append(Sample.correct.is_(False))
    page = (
        select(Sample.set_name, Sample.doc_id, Sample.gold_label, Sample.label, Sample.correct,
               Prompt.text, Sample.generation, Sample.gold, Sample.bart_score,
               Sample.bertscore_f1, Sample.rouge_l, Sample.consistency)
        .outerjoin(Prompt, Sample.prompt_hash == Prompt.hash)
        .where(*conditions)
        .order_by(Sample.set_name, Sample.doc_id)
        .limit(max(1, int(limit)))
        .offset(max(0, int(offset)))
    )
    with engine.connect() as conn:
        total = conn.scalar(select(func.count(Sample.id)).where(*conditions)) or 0
        rows = conn.execute(page).all()
    return _frame(rows, SAMPLE_COLUMNS), int(total)


# --------------------------------------------------------------------------- compare


def _ci_text(lo: float, hi: float) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return ""
    return f"{lo:.2f} to {hi:.2f}"


def compare_runs(a: pd.DataFrame, b: pd.DataFrame,
                 sets: Sequence[str] = SET_NAMES) -> pd.DataFrame:
    """Weighted F1 (with CI) of two runs (`run_results` frames) side by side, over the
    sets in `sets` either scored, and B - A."""
    def by_set(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.reindex(columns=["set", "weighted_f1", "ci_low", "ci_high"])
        return frame[frame["set"].isin(list(sets))].set_index("set")

    a, b = by_set(a), by_set(b)
    names = [s for s in sets if s in a.index or s in b.index]
    a, b = a.reindex(names), b.reindex(names)
    return pd.DataFrame({
        "set": names,
        "A weighted F1": a["weighted_f1"].to_numpy(dtype="float64"),
        "A 95% CI": [_ci_text(lo, hi) for lo, hi in zip(a["ci_low"], a["ci_high"], strict=True)],
        "B weighted F1": b["weighted_f1"].to_numpy(dtype="float64"),
        "B 95% CI": [_ci_text(lo, hi) for lo, hi in zip(b["ci_low"], b["ci_high"], strict=True)],
        "B - A": (b["weighted_f1"] - a["weighted_f1"]).round(2).to_numpy(dtype="float64"),
    })


# --------------------------------------------------------------------------- queue


QUEUE_COLUMNS: tuple[str, ...] = (
    "id", "name", "model", "revision", "precision", "backend", "adapter", "status", "runs",
    "attempts", "submitted", "claimed", "heartbeat", "finished", "worker", "submitter", "error",
)
QUEUE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("RUNNING", "Running"), ("PENDING", "Pending"), ("FAILED", "Failed"),
    ("FINISHED", "Finished"),
)


def load_queue(engine: Engine) -> pd.DataFrame:
    """Every submission, oldest first (imhi_bench.queue.jobs.list_submissions), as a frame."""
    from imhi_bench.queue.jobs import list_submissions

    rows = list_submissions(engine)
    frame = pd.DataFrame([{
        **{k: r[k] for k in ("id", "name", "model", "revision", "precision", "backend",
                             "adapter", "status", "runs", "attempts", "submitted",
                             "heartbeat", "finished", "worker", "submitter", "error")},
        "claimed": r["claimed_at"],
    } for r in rows], columns=list(QUEUE_COLUMNS))
    for col in ("submitted", "claimed", "heartbeat", "finished"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    return frame


def queue_section(queue: pd.DataFrame, status: str) -> pd.DataFrame:
    """The submissions in one state, with the columns that state needs."""
    # The reason first for failures; the long revision hash last.
    cols = {
        "PENDING": ["id", "name", "model", "adapter", "precision", "backend", "submitted",
                    "attempts", "error", "revision"],
        "RUNNING": ["id", "name", "model", "adapter", "worker", "claimed", "heartbeat",
                    "attempts"],
        "FAILED": ["id", "name", "error", "model", "adapter", "finished", "attempts",
                   "revision"],
        "FINISHED": ["id", "name", "model", "adapter", "precision", "backend", "finished",
                     "runs", "revision"],
    }[status]
    part = queue[queue["status"] == status][cols]
    return part.rename(columns={"error": "reason" if status == "FAILED" else "note"}) \
        .reset_index(drop=True)
