"""How the leaderboard's tables look: heights that fit every row, column formats, greyed
unranked rows, missing values as "–", stored values as text."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from imhi_bench.benchmark.sets import SET_NAMES
from imhi_bench.leaderboard import data

# Missing values in every table: never "None".
MISSING = "–"
ROW_PX = 35  # Streamlit's default data grid row (and header) height
GREY = "color: #9aa0a6"  # unranked (partial / unknown) rows


def height(rows: int) -> int:
    """A grid height that fits every row, header included: no scrolling box."""
    return (rows + 1) * ROW_PX + 3


def column_config(frame: pd.DataFrame) -> dict:
    config = {}
    for col in frame.columns:
        # Names and paths are plain text cells, never links or Markdown.  The model column is
        # not pinned: the grid draws pinned columns muted, like an index, not as the names.
        if col == "model":
            config[col] = st.column_config.TextColumn(width="medium")
        elif col == data.BAND_COLUMN:
            config[col] = st.column_config.TextColumn(width="small")
        elif col == data.COVERAGE_COLUMN:
            config[col] = st.column_config.TextColumn(width="medium")
        elif col in data.TEXT_COLUMNS:
            config[col] = st.column_config.TextColumn()
        elif col == "mean BART-score":
            config[col] = st.column_config.NumberColumn(format="%.3f")
        elif col == "size (B)":
            config[col] = st.column_config.NumberColumn(format="%.3g")
        elif col in (data.MEAN_COLUMN, data.OWN_MEAN_COLUMN):
            config[col] = st.column_config.NumberColumn(format="%.2f")
        elif col in SET_NAMES:
            config[col] = st.column_config.NumberColumn(format="%.2f", width="small")
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
