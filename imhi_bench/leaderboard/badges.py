"""How a run is named and badged on the leaderboard: its size ("13B"), its coverage
("complete", "partial: why"), its label in pickers, and the one line of badges ("about")
its model's fields fold into."""

from __future__ import annotations

import math

import pandas as pd

from imhi_bench.scoring.contamination import badge


def size_label(params: float | None) -> str:
    """13e9 -> "13B", 1.25e8 -> "125M"; unknown -> ""."""
    if params is None or not math.isfinite(params):
        return ""
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"


def _known(value) -> bool | None:
    # The store's runs.complete as read back: True, False, or None/NaN (unknown).
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else bool(value)


def coverage_badge(complete, coverage) -> str:
    """The coverage column's text: "complete", or "partial: why" / "unknown: why"."""
    state = _known(complete)
    if state is True:
        return "complete"
    why = coverage if isinstance(coverage, str) and coverage else "not recorded"
    return f"{'partial' if state is False else 'unknown'}: {why}"


def run_label(row: pd.Series | dict) -> str:
    """How a run is named in pickers: model (revision), source, format, setting, run id,
    and its coverage unless it is complete."""
    parts = [str(row["model"])]
    if row.get("revision"):
        parts.append(f"@{row['revision']}")
    detail = [str(row["source"])] + [str(row[k]) for k in ("format", "setting", "protocol")
                                     if row.get(k)]
    label = f"{' '.join(parts)} ({', '.join(detail)}; run {int(row['run_id'])}"
    if "complete" in row and _known(row["complete"]) is not True:
        label += f"; {coverage_badge(row['complete'], row.get('coverage'))}"
    return label + ")"


def about_badges(run) -> str | None:
    """A run's model fields as one short line ("fine-tuned · 13B · IMHI · few-shot"): what
    is known of source (when reported), type, size, training data, format, setting and
    coverage (when not complete); the columns of each stay choosable and go to the CSV.
    None (shown "–") when nothing is known; a run the contamination check flagged says so
    first."""
    state = _known(run.complete)
    parts = [badge(getattr(run, "contamination", None)) or None,  # suspect / contaminated
             "reported" if run.source == "reported" else None, run.type,
             size_label(run.params) or None, run.training_data,
             None if run.format == "instruction" else run.format, run.setting or None,
             None if state is True else ("partial" if state is False else "coverage unknown")]
    return " · ".join(str(p) for p in parts if isinstance(p, str) and p.strip()) or None
