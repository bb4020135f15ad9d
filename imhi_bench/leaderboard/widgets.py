"""How the leaderboard's tables look: heights that fit every row, column formats, greyed
unranked rows, missing values as "–", stored values as text."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from imhi_bench.benchmark.sets import SET_NAMES, get_set
from imhi_bench.leaderboard import data

# Missing values in every table: never "None".
MISSING = "–"
ROW_PX = 35  # Streamlit's default data grid row (and header) height
GREY = "color: #9aa0a6"  # unranked (partial / unknown) rows


def height(rows: int) -> int:
    """A grid height that fits every row, header included: no scrolling box."""
    return (rows + 1) * ROW_PX + 3


# Pixel widths that fit rank, model, band, mean, the 8 ranked sets and the badges in the
# main area of a 1366 px screen beside the sidebar (904 px there; tests/test_leaderboard.py
# measures that nothing scrolls sideways), and the protocol column too when all protocols
# are mixed.  Model, badges and protocol (SHARED) share what the others leave.
GRID_PX = 890
NARROW_PX = {data.RANK_COLUMN: 40, data.BAND_COLUMN: 48, data.MEAN_COLUMN: 52}
SET_PX = 58  # "85.7" with room; the header's full name is its tooltip
CHAR_PX = 7.2  # one character of a cell's text, about
MODEL_PX = 110  # the model column at least (as wide as its longest name, room allowing)
ABOUT_PX = 90  # the badges at least
PROTOCOL_PX = 80  # the protocol at least: "default" whole; a longer name is cut, whole on click
# The columns that share GRID_PX's rest, each at least its minimum, in the order they are
# served: the name first, then the badges, then the protocol (a mixed view's).  With the
# mixed view's 8 sets the three minimums fill all but 6 px of what is left.
SHARED: dict[str, int] = {"model": MODEL_PX, data.ABOUT_COLUMN: ABOUT_PX,
                          "protocol": PROTOCOL_PX}


def _text_width(values: pd.Series, bounds: tuple[int, int]) -> int:
    longest = int(values.dropna().astype(str).str.len().max()) if values.notna().any() else 0
    return int(min(max(longest * CHAR_PX + 18, bounds[0]), bounds[1]))


def _shared_widths(frame: pd.DataFrame, shared: Sequence[str]) -> dict[str, int]:
    # what GRID_PX leaves after the fixed columns, served in SHARED's order: each column as
    # wide as its longest text, but leaving the minimums of those after it
    fixed = sum(NARROW_PX.get(c, SET_PX if c in SET_NAMES else 0) for c in frame.columns)
    left = GRID_PX - fixed
    pool = [c for c in SHARED if c in shared and c in frame.columns]
    out: dict[str, int] = {}
    for i, col in enumerate(pool):
        after = sum(SHARED[c] for c in pool[i + 1:])
        low = SHARED[col]
        out[col] = _text_width(frame[col], (low, max(low, left - after)))
        left -= out[col]
    return out


def column_config(frame: pd.DataFrame, shared: Sequence[str] = tuple(SHARED)) -> dict:
    """Formats, widths and header tooltips: one decimal in the grid (the CSV keeps the
    stored values); names are plain text cells, never links or Markdown.  The `shared`
    columns present (of SHARED) share GRID_PX's rest; the others keep their own width."""
    config = {}
    widths = _shared_widths(frame, shared)
    for col in frame.columns:
        # The model column is not pinned: the grid draws pinned columns muted, like an
        # index, not as the names.  A name cut short is whole when its cell is clicked.
        if col == "model":
            config[col] = st.column_config.TextColumn(
                width=widths.get(col),
                help="the model's name (click a cell to read a long one whole; the Model "
                "page shows its run)")
        elif col == data.RANK_COLUMN:
            config[col] = st.column_config.NumberColumn(
                width=NARROW_PX[col], format="%d",
                help="position by the mean among the ranked rows shown (ties share it); "
                "none for unranked rows and rows without a mean")
        elif col == data.BAND_COLUMN:
            config[col] = st.column_config.TextColumn(
                "band", width=NARROW_PX[col], help=f"{col}: the ranks this row could take "
                "given the test sets' noise (see the note above the table)")
        elif col == data.ABOUT_COLUMN:
            config[col] = st.column_config.TextColumn(
                width=widths.get(col),
                help="type · size · training data · format (when not instruction) · "
                "setting · coverage (when not complete); each is a column of its own in the "
                "sidebar's Columns and in the CSV")
        elif col == "protocol" and col in widths:
            config[col] = st.column_config.TextColumn(
                width=widths.get(col),
                help="how the row was made: prompt, decoding, label reader, metric variants, "
                "data (click a cell to read a long name whole); only rows of one protocol "
                "are ranked together")
        elif col == data.COVERAGE_COLUMN:
            config[col] = st.column_config.TextColumn(width="medium")
        elif col in data.TEXT_COLUMNS:
            config[col] = st.column_config.TextColumn()
        elif col == "mean BART-score":
            config[col] = st.column_config.NumberColumn(format="%.3f")
        elif col == "size (B)":
            config[col] = st.column_config.NumberColumn(format="%.3g")
        elif col == data.MEAN_COLUMN:
            config[col] = st.column_config.NumberColumn(
                "mean", format="%.1f", width=NARROW_PX[col],
                help=f"{col}: the mean over the sets shown, the ranking's key")
        elif col == data.OWN_MEAN_COLUMN:
            config[col] = st.column_config.NumberColumn(format="%.1f")
        elif col in SET_NAMES:
            config[col] = st.column_config.NumberColumn(
                format="%.1f", width=SET_PX,
                help=f"{col}: {get_set(col).description} Weighted F1 (%).")
    return config


def greyed(view: pd.DataFrame, ranked: pd.Series):
    """`view` with its unranked rows greyed (a Styler), or `view` itself when all are
    ranked (a Styler costs time per cell)."""
    if ranked.all():
        return view
    # na_rep: a Styler's own display text would otherwise say "nan" where a value is missing
    return view.style.apply(
        lambda row: [("" if ranked.loc[row.name] else GREY)] * len(row), axis=1,
    ).format(na_rep=MISSING)


def as_text(value) -> str:
    """A stored value as display text: None/NaN -> "", times to the second."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)
