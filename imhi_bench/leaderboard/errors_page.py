"""The model page's "Where it errs" section (Streamlit layout; the data is
`run_data.set_errors` and `run_data.cell_samples`): per set, the confusion matrix and
per-class F1 with support, then a few samples of any off-diagonal cell.  Everything from
users or models is shown as text (dataframes, st.text, st.code), as in `app`."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from sqlalchemy.engine import Engine

from imhi_bench.leaderboard import run_data

CELL_SAMPLES = 3


def show_errors(engine: Engine, run_id: int, *, height: Callable[[int], int],
                missing: str) -> None:
    errors = run_data.set_errors(engine, run_id)
    if not errors:
        return
    st.subheader("Where it errs")
    st.caption("Per set: gold classes (rows) against the labels as read (columns; "
               "'unreadable': no label could be read, scored as wrong), and each class's "
               "F1, precision and recall (percent) with its support. The score JSON "
               "(imhi_results.json) holds the same per set, as 'confusion' and 'per_class'.")
    percent = {c: st.column_config.NumberColumn(format="%.2f")
               for c in ("f1", "precision", "recall")}
    for name, part in errors.items():
        st.text(f"{name}: {int(part['per_class']['support'].sum())} samples")
        # a wide matrix (SAD: 9 classes) gets the page's width, the per-class table below
        left, right = st.columns([3, 2]) if len(part["per_class"]) <= 4 else (st, st)
        left.dataframe(part["confusion"], hide_index=True, key=f"confusion_{name}",
                       placeholder=missing, height=height(len(part["confusion"])))
        right.dataframe(part["per_class"], hide_index=True, key=f"per_class_{name}",
                        placeholder=missing, height=height(len(part["per_class"])),
                        column_config=percent)
    wrong = {name: part["cells"] for name, part in errors.items() if part["cells"]}
    if not wrong:
        st.text("No errors: every label read matches its gold class.")
        return
    # keys carry the run and the set, and options are the cells' own text: a choice made
    # on another run or set is never shown against this one's cells
    left, right = st.columns(2)
    name = left.selectbox("Errors of set", list(wrong), key=f"errors_set_{run_id}")
    cells = {f"{g} -> {r}: {n}": (g, r) for g, r, n in wrong[name]}
    pick = right.selectbox("Cell (gold -> read as: samples)", list(cells),
                           key=f"errors_cell_{run_id}_{name}")
    gold, read = cells[pick]
    samples = run_data.cell_samples(engine, run_id, name, gold, read, limit=CELL_SAMPLES)
    for row in samples.to_dict("records"):
        st.text(f"doc {row['doc_id']}: gold {gold}, read as {read}; "
                f"{row['how the label was read']}")
        for field, title in (("post (cut)", "Post (the prompt, cut)"),
                             ("generation", "Generation"), ("gold", "Gold response")):
            st.caption(title)
            st.code(row[field] or "(not stored)", language=None, wrap_lines=True)
