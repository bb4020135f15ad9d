"""The leaderboard's main table as pandas frames: the store queries behind it and its
shaping, filtering, sorting and CSV, kept apart from Streamlit so they can be tested
directly (the app, `imhi_bench.leaderboard.app`, only lays them out; `imhi-bench
leaderboard --csv` writes the same default view).  One run's page and the compare page read
`imhi_bench.leaderboard.run_data`; the queue page `imhi_bench.leaderboard.queue_data`.

Like with like: the ranking holds the runs of one protocol (`imhi_bench.core.protocol`: the
prompt, decoding, label reader, metric variants, task version and unmodified data), by
default the default one (the paper's as far as this tool runs it); a run on modified data is
its own protocol.  The paper's reported rows are references with their own protocol, shown
beside the ranking (`reported_table`), never in it; "all protocols" mixes every run, each
with its protocol's name.

Two queries fetch every finished run and every per-set result; the table is built and
filtered in pandas, so what a user types (search) never reaches SQL.

What is ranked compares: only complete runs (every sample of every set they claim; the
store's `runs.complete`), by a mean over one common group of sets, the same for every row
(a row missing one of them has no mean: "–", last).  Partial runs (`--limit`, a set cut
short) and runs of unknown coverage are left out unless asked for, then listed greyed after
the ranked ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from imhi_bench.benchmark.sets import SET_NAMES, UNSEEN_SETS

# how a run is named and badged (size, coverage, about), re-exported for the app
from imhi_bench.leaderboard.badges import (  # noqa: F401
    _known,
    about_badges,
    coverage_badge,
    run_label,
    size_label,
)

# what the user narrows the table to (search, type, size, ...), re-exported for the app
from imhi_bench.leaderboard.filters import (  # noqa: F401
    UNKNOWN,
    Filters,
    filter_options,
    filter_table,
)
from imhi_bench.leaderboard.unreadable import read_columns
from imhi_bench.scoring.contamination import badge, flagged
from imhi_bench.scoring.protocol import DEFAULT_ID
from imhi_bench.store.readback import raw, read_json, read_number, read_time
from imhi_bench.store.tables import Model, Run, SetResult

# The default ranking's sets: "the 8 sets of the public release" (issue 14), the sets whose
# test files every copy of the MentaLLaMA release holds, each verified by sha256
# (`benchmark/release_manifest.json`): every set but CLP (never released) and SWMH (in the
# release, verified by git blob id, but absent from copies made before `data fetch` knew
# it, so a run on such a copy would rank as missing a set).  With SWMH: the second group.
# One place to change it.  In SET_NAMES order, as every set list here.
RANKED_SETS: tuple[str, ...] = tuple(s for s in SET_NAMES if s not in ("CLP", "swmh"))
# Which sets the per-set columns and the ranked mean cover; the first is the default.
SET_GROUPS: dict[str, tuple[str, ...]] = {
    "public release (8 sets)": RANKED_SETS,
    "public release with SWMH (9 sets)": tuple(s for s in SET_NAMES if s != "CLP"),
    "unseen tasks (paper Table 3)": tuple(s for s in SET_NAMES if s in UNSEEN_SETS),
    "all 10 sets": SET_NAMES,
}
DEFAULT_GROUP = next(iter(SET_GROUPS))
ALL_PROTOCOLS = "all"  # View.protocol: every run, each row naming its protocol

# Main table columns besides the per-set ones, in display order.
RANK_COLUMN = "rank"  # 1, 2, ... among the ranked rows shown with a mean; empty for the others
MEAN_COLUMN = "mean weighted F1"  # over the group's sets, all of them or none ("–")
ABOUT_COLUMN = "about"  # the model's fields folded into one line of badges (`about_badges`)
COVERAGE_COLUMN = "coverage"  # the badge: complete, or partial / unknown and why
OWN_MEAN_COLUMN = "mean of sets scored"  # every set the run scored (a paper row: its mean)
RANKED = "ranked"  # internal: complete runs are ranked, the others listed after them
BAND_COLUMN = "rank band"  # the ranks a row could take (`band_data`); empty for no band
# suspect / contaminated (`imhi-bench contamination`): such a run is not ranked until cleared
CONTAMINATION_COLUMN = "contamination"
INFO_COLUMNS: tuple[str, ...] = (
    RANK_COLUMN, "model", BAND_COLUMN, MEAN_COLUMN, ABOUT_COLUMN, COVERAGE_COLUMN,
    CONTAMINATION_COLUMN, "source",
    "type", "size (B)", "training data", "format", "setting", "protocol", "sets scored",
    OWN_MEAN_COLUMN, "mean BART-score", "date", "path", "revision", "base model", "precision",
    "license", "backend", "run_id",
)
# The grid's first view: rank, name, band, mean, then the sets (`visible_columns`) and the
# badges, so a 1366 px screen holds it without scrolling sideways; the rest are choosable.
DEFAULT_COLUMNS: tuple[str, ...] = (RANK_COLUMN, "model", BAND_COLUMN, MEAN_COLUMN,
                                    ABOUT_COLUMN)
# What a CSV of a view holds besides its shown columns: each field the badges fold, and
# the rest of what the grid showed before it was folded (path, ids, ... stay choosable).
CSV_COLUMNS: tuple[str, ...] = tuple(
    c for c in INFO_COLUMNS if c not in ("path", "revision", "base model", "precision",
                                         "license", "backend", "run_id"))
TEXT_COLUMNS: tuple[str, ...] = ("model", BAND_COLUMN, ABOUT_COLUMN, COVERAGE_COLUMN,
                                 CONTAMINATION_COLUMN, "source", "type", "training data",
                                 "format", "setting", "protocol", "date", "path", "revision",
                                 "base model", "precision", "license", "backend")


# What the user narrows the table to (search, type, size, ...): `leaderboard.filters`.

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
    """One row per finished run, with its model's fields and its coverage (complete: True,
    False = partial, None = unknown)."""
    query = (
        select(
            Run.id.label("run_id"), Model.id.label("model_id"), Model.name.label("model"),
            Model.path, Model.revision, Model.type, Model.params, Model.precision,
            Model.base_model, Model.license, Model.training_data, Run.source, Run.reference,
            Run.backend, Run.format, Run.setting, raw(Run.finished_at), raw(Run.recorded_at),
            Run.complete, Run.coverage, Run.protocol_id, raw(Run.protocol),
            # the contamination check's report, read from the provenance in Python: a
            # damaged provenance reads as no report (SQL's JSON functions would fail)
            raw(Run.provenance),
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
        "setting", "finished_at", "recorded_at", "complete", "coverage", "protocol_id",
        "protocol", "contamination",
    ])
    # a damaged row's unreadable values are missing (–), and named in its UNREADABLE cell
    frame = read_columns(frame, {"finished_at": read_time, "recorded_at": read_time,
                                 "protocol": read_json, "params": read_number})
    frame["contamination"] = frame["contamination"].map(_contamination)
    frame["protocol"] = frame["protocol"].map(_protocol_name)
    frame["protocol_id"] = frame["protocol_id"].map(
        lambda v: v if isinstance(v, str) and v else UNKNOWN)
    frame["params"] = pd.to_numeric(frame["params"]).astype("float64")
    for col in ("finished_at", "recorded_at"):  # one unit, even when a column is all null
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    return frame


SCORE_COLUMNS: tuple[str, ...] = ("run_id", "set", "weighted_f1", "bart_score")


def _contamination(provenance) -> dict | None:
    """The contamination check's report a run's stored provenance holds, if any."""
    value = read_json(provenance)[0]
    report = value.get("contamination") if isinstance(value, dict) else None
    return report if isinstance(report, dict) else None


def _protocol_name(value) -> str:
    # the name the run recorded with its protocol; a row from a damaged store reads unknown
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) and name else UNKNOWN


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
    frame = read_columns(rows_frame(rows, SCORE_COLUMNS),
                         dict.fromkeys(SCORE_COLUMNS[2:], read_number), prefix="set")
    for col in SCORE_COLUMNS[2:]:
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    return frame


# --------------------------------------------------------------------------- main table


def _blank_as_missing(column: pd.Series) -> pd.Series:
    # "" is how the store says "none" for some text fields: shown as missing ("–") too.
    return column.where(column.astype("string").str.strip().fillna("") != "", None)


def leaderboard_table(
    runs: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    sets: Sequence[str] = RANKED_SETS,
    latest_only: bool = True,
    include_partial: bool = False,
    protocol: str = DEFAULT_ID,
) -> pd.DataFrame:
    """One row per run that scored any of `sets`: model fields, its coverage, weighted F1
    per set in `sets` and their mean (only when it scored every one of them, so every mean
    is over the same sets), the number of sets it scored and their mean (every set, not
    only `sets`: a paper row's own mean), and its mean BART-score over `sets`.

    Only the runs of `protocol` (a protocol id; the paper's reported rows have their own,
    so they are never ranked beside ours), or every run with ALL_PROTOCOLS.  Only complete
    runs unless `include_partial` (then partial and unknown runs too, the `ranked` column
    False).  `latest_only` keeps the newest run per model, source, format, setting,
    protocol and ranked-or-not, so a later partial try never hides a complete run, nor a
    few-shot run a zero-shot one.  Sorted: ranked rows first, by the mean (missing last),
    then by model."""
    sets = list(sets)
    if protocol != ALL_PROTOCOLS:
        runs = runs[runs["protocol_id"] == protocol]
    # a run the contamination check flagged is listed, not ranked, until an operator clears it
    checked = runs.get("contamination", pd.Series(None, index=runs.index, dtype=object))
    runs = runs.assign(**{RANKED: runs["complete"].map(lambda v: _known(v) is True)
                          .astype(bool) & ~checked.map(flagged).astype(bool)},
                       contamination=checked)
    if not include_partial:
        runs = runs[runs[RANKED]]
    if latest_only and not runs.empty:
        newest = runs["finished_at"].fillna(runs["recorded_at"])
        runs = (runs.assign(_when=newest)
                .sort_values(["_when", "run_id"], ascending=False)
                .drop_duplicates(["model_id", "source", "format", "setting", "protocol_id",
                                  RANKED])
                .drop(columns="_when"))
    mine = scores[scores["run_id"].isin(runs["run_id"])]
    every = (mine.pivot(index="run_id", columns="set", values="weighted_f1")
             .reindex(columns=list(SET_NAMES)).astype("float64"))
    wide = every[sets]
    in_group = wide.notna().sum(axis=1)
    bart = mine[mine["set"].isin(sets)].groupby("run_id")["bart_score"].mean()

    table = runs.set_index("run_id")
    table = table.loc[table.index.intersection(in_group[in_group > 0].index)]
    wide, every = wide.loc[table.index], every.loc[table.index]
    out = pd.DataFrame({
        "model": table["model"],
        COVERAGE_COLUMN: [coverage_badge(c, w) for c, w in
                          zip(table["complete"], table["coverage"], strict=True)],
        CONTAMINATION_COLUMN: table["contamination"].map(badge),
        "source": table["source"],
        "type": table["type"].fillna(UNKNOWN),
        "size (B)": table["params"] / 1e9,
        "training data": table["training_data"].fillna(UNKNOWN),
        "format": table["format"].fillna(UNKNOWN),
        "setting": _blank_as_missing(table["setting"]),
        "protocol": table["protocol"],
        ABOUT_COLUMN: [about_badges(r) for r in table.itertuples(index=False)],
        # skipna=False: a row missing one of `sets` has no mean rather than one over fewer
        MEAN_COLUMN: wide.mean(axis=1, skipna=False).round(2),
        "sets scored": every.notna().sum(axis=1).astype("int64"),
        OWN_MEAN_COLUMN: every.mean(axis=1, skipna=True).round(2),
        "mean BART-score": bart.reindex(table.index).round(3),
        "date": table["finished_at"].dt.strftime("%Y-%m-%d"),
        "path": _blank_as_missing(table["path"]),
        "revision": _blank_as_missing(table["revision"]),
        "base model": table["base_model"],
        "precision": table["precision"],
        "license": table["license"],
        "backend": table["backend"],
        RANKED: table[RANKED],
    }, index=table.index)
    out = out.join(wide)
    out.index.name = "run_id"
    out = out.sort_values([RANKED, MEAN_COLUMN, "model"], ascending=[False, False, True],
                          na_position="last")
    return out.reset_index()


def sort_table(table: pd.DataFrame, by: str, descending: bool = True) -> pd.DataFrame:
    """Sorted by `by` (missing values last either way), ranked rows before the others."""
    if by not in table.columns:
        return table
    out = table.sort_values(by, ascending=not descending, na_position="last", kind="stable")
    if RANKED in out.columns:
        out = out.sort_values(RANKED, ascending=False, kind="stable")
    return out


def with_rank(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with its rank column: 1, 2, ... by the mean among the ranked rows that have
    one (ties share the better rank), within each protocol (only like is ranked with like);
    empty for the others.  Of the rows given: a filtered view ranks what it shows."""
    rankable = table[RANKED].astype(bool) & table[MEAN_COLUMN].notna()
    means = table[MEAN_COLUMN].where(rankable)
    by = table["protocol"].fillna("") if "protocol" in table else pd.Series("", table.index)
    rank = means.groupby(by).rank(method="min", ascending=False) if len(table) else means
    return table.assign(**{RANK_COLUMN: rank.astype("Int64")})


def visible_columns(chosen_info: Sequence[str], sets: Sequence[str]) -> list[str]:
    """The info columns chosen, in display order, with the per-set columns right after the
    mean (so the scores are on screen without scrolling)."""
    cut = INFO_COLUMNS.index(MEAN_COLUMN) + 1
    lead = [c for c in INFO_COLUMNS[:cut] if c in chosen_info]
    trail = [c for c in INFO_COLUMNS[cut:] if c in chosen_info]
    return lead + list(sets) + trail


@dataclass
class View:
    """Everything that decides what the main table shows.  The defaults are the app's first
    view, which `imhi-bench leaderboard --csv` writes too (`default_view`)."""

    group: str = DEFAULT_GROUP  # a SET_GROUPS key
    protocol: str = DEFAULT_ID  # a protocol id, or ALL_PROTOCOLS
    latest_only: bool = True
    include_partial: bool = False
    filters: Filters = field(default_factory=Filters)
    columns: Sequence[str] = DEFAULT_COLUMNS  # the info columns shown
    sort_by: str = MEAN_COLUMN
    descending: bool = True

    @property
    def sets(self) -> tuple[str, ...]:
        return SET_GROUPS[self.group]


def shape(table: pd.DataFrame, view: View, *, csv: bool = False) -> pd.DataFrame:
    """A `leaderboard_table` filtered, ranked, sorted and cut to the view's columns (with
    `csv`, to them and CSV_COLUMNS: what a download holds); the index is the table's, so
    `table.loc[shaped.index, RANKED]` says which rows are ranked."""
    shown = with_rank(filter_table(table, view.filters))
    shown = sort_table(shown, view.sort_by, view.descending)
    columns = list(view.columns) + (list(CSV_COLUMNS) if csv else [])
    if view.protocol == ALL_PROTOCOLS and "protocol" not in columns:
        columns.append("protocol")  # mixed protocols: every row says which it is
    # the band column exists only where the table was built with the store at hand
    return shown[[c for c in visible_columns(columns, view.sets) if c in shown.columns]]


def build_view(runs: pd.DataFrame, scores: pd.DataFrame, view: View,
               engine: Engine | None = None, *, csv: bool = False) -> pd.DataFrame:
    """The main table as `view` shows it (with `csv`, as its CSV holds it); with `engine`,
    with its rank band column (`band_data`, from the store's samples)."""
    table = leaderboard_table(runs, scores, sets=view.sets, latest_only=view.latest_only,
                              include_partial=view.include_partial, protocol=view.protocol)
    if engine is not None:
        from imhi_bench.leaderboard.band_data import with_rank_bands

        table = with_rank_bands(engine, table, view.sets)
    return shape(table, view, csv=csv)


def default_view(engine: Engine, protocol: str = DEFAULT_ID, *,
                 csv: bool = False) -> pd.DataFrame:
    """The ranked table as the app first shows it (View's defaults), from the store; with
    `protocol`, as it shows when that protocol (or ALL_PROTOCOLS) is chosen; with `csv`, as
    its Download CSV (and `imhi-bench leaderboard --csv`) writes it."""
    return build_view(load_runs(engine), load_scores(engine), View(protocol=protocol), engine,
                      csv=csv)


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
