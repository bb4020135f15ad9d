"""The compare page's paired section (Streamlit layout; the data is
`run_data.paired_comparison`): the numbers `imhi-bench compare` prints for two stored runs,
B - A on the samples both scored, with the paired bootstrap CI and both p-values."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from sqlalchemy.engine import Engine

from imhi_bench.leaderboard import run_data


def show_paired(engine: Engine, run_a: int, run_b: int, *, height: Callable[[int], int],
                missing: str) -> None:
    st.subheader("Is B better than A? (paired, on the samples both scored)")
    frame, note = run_data.paired_comparison(engine, run_a, run_b)
    st.text(note)
    if frame.empty:
        return
    st.caption("B - A in percentage points; the 95% CI and the first p-value come from a "
               "paired bootstrap (both runs resampled with the same 1000 draws per set, "
               "those of each run's own CI), the second from an approximate-randomization "
               "test (1000 shuffles of the two runs' answers per sample). The mean row "
               "averages the shared sets draw by draw. As `imhi-bench compare A B` prints.")
    numbers = {c: st.column_config.NumberColumn(format="%.2f") for c in ("A", "B", "B - A")}
    numbers.update({c: st.column_config.NumberColumn(format="%.4f")
                    for c in ("p bootstrap", "p permutation")})
    st.dataframe(frame, hide_index=True, key="paired_table", placeholder=missing,
                 height=height(len(frame)), column_config=numbers)
