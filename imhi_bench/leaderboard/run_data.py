"""What one run's page and the compare page show, as pandas frames: a run's per-set
metrics and stored facts, its samples a page at a time (bound parameters only), and two
runs side by side."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from imhi_bench.benchmark.sets import SET_NAMES
from imhi_bench.core.urls import mask_text
from imhi_bench.leaderboard.data import RANK_COLUMN, View, rows_frame, shape
from imhi_bench.leaderboard.unreadable import UNREADABLE, read_columns
from imhi_bench.scoring.quality.table import METRICS as QUALITY_METRICS
from imhi_bench.store.readback import raw, read_json, read_number, read_time
from imhi_bench.store.tables import Model, Prompt, Run, Sample, SetResult

QUALITY_COLUMNS: tuple[str, ...] = tuple(m.column for m in QUALITY_METRICS)
RESULT_COLUMNS: tuple[str, ...] = (
    "set", "weighted_f1", "ci_low", "ci_high", "accuracy", "macro_f1", "unparseable", "n",
    *QUALITY_COLUMNS, "labeler",
)
# Quality metrics stored on a 0-1 scale (their scale says so) are shown in percent, like
# weighted F1, under a title that says it; the others (BARTScore, a log-likelihood) under a
# title naming their own scale.
PERCENT_QUALITY: tuple[str, ...] = tuple(m.column for m in QUALITY_METRICS
                                         if m.scale.endswith("(0-1)"))
QUALITY_TITLES: dict[str, str] = {
    m.column: f"{m.label} (%)" if m.column in PERCENT_QUALITY else f"{m.label} (log-lik., <= 0)"
    for m in QUALITY_METRICS
}
_PERCENT_KEYS = {m.key for m in QUALITY_METRICS if m.column in PERCENT_QUALITY}
# SQL order of set names as SET_NAMES lists them (a plain ORDER BY set_name is by bytes).
_SET_ORDER = case({name: i for i, name in enumerate(SET_NAMES)}, value=Sample.set_name,
                  else_=len(SET_NAMES))


def run_results(engine: Engine, run_id: int) -> pd.DataFrame:
    """Every stored metric of one run, one row per set in SET_NAMES order; metric columns
    the run has no value for at all are dropped.  Quality metrics are titled with their
    scale (QUALITY_TITLES), the 0-1 ones in percent."""
    query = select(
        SetResult.set_name, SetResult.weighted_f1, SetResult.weighted_f1_lo,
        SetResult.weighted_f1_hi, SetResult.accuracy, SetResult.macro_f1,
        SetResult.unparseable, SetResult.n,
        *(getattr(SetResult, c) for c in QUALITY_COLUMNS), SetResult.labeler,
    ).where(SetResult.run_id == run_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = read_columns(rows_frame(rows, RESULT_COLUMNS),
                         dict.fromkeys(RESULT_COLUMNS[1:-1], read_number), prefix="set")
    for col in RESULT_COLUMNS[1:-1]:
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    order = {name: i for i, name in enumerate(SET_NAMES)}
    frame = frame.sort_values("set", key=lambda s: s.map(order)).reset_index(drop=True)
    keep = ["set", "weighted_f1"] + [
        c for c in RESULT_COLUMNS[2:] if frame[c].notna().any()]
    if frame[UNREADABLE].astype(bool).any():  # naming them, beside the "–" they show as
        keep.append(UNREADABLE)
    frame = frame[keep].copy()
    for col in PERCENT_QUALITY:
        if col in frame:
            frame[col] = (frame[col] * 100).round(2)
    return frame.rename(columns=QUALITY_TITLES)


def mean_text(mean: dict) -> str:
    """A run's stored "mean" block as one line, 0-1 quality means in percent like the
    per-set table."""
    parts = []
    for key, value in mean.items():
        if key in _PERCENT_KEYS and isinstance(value, (int, float)):
            parts.append(f"{key} {value * 100:.2f}%")
        else:
            parts.append(f"{key} {'–' if value is None else value}")
    return ", ".join(parts)


def mean_value(mean: dict, results: pd.DataFrame) -> str:
    """The stored mean weighted F1 to one decimal; for a run that stored none (the paper's
    rows), the mean of its per-set results (`run_results`); "–" when there are none."""
    value = mean.get("weighted_f1") if isinstance(mean, dict) else None
    if not isinstance(value, (int, float)) and results["weighted_f1"].notna().any():
        value = float(results["weighted_f1"].mean())
    return f"{value:.1f}" if isinstance(value, (int, float)) else "–"


def mean_ci_text(mean: dict) -> str:
    """Its 95% bootstrap CI and the number of sets, in words."""
    ci = mean.get("weighted_f1_ci") if isinstance(mean, dict) else None
    sets = mean.get("sets") if isinstance(mean, dict) else None
    over = f" over {sets} set{'' if sets == 1 else 's'}" if isinstance(sets, int) else ""
    if isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f"95% CI {ci[0]:.1f}–{ci[1]:.1f}{over}"
    return f"no CI stored{over}"


def rank_text(table: pd.DataFrame, view: View, run_id: int) -> str:
    """The run's rank in `view` of `table` (a `leaderboard_table` frame) as "3 of 7", or why
    it has none."""
    shown = shape(table, view)
    row = shown[table.loc[shown.index, "run_id"].eq(run_id)]
    if row.empty or pd.isna(row[RANK_COLUMN].iloc[0]):
        return "not ranked"
    return f"{int(row[RANK_COLUMN].iloc[0])} of {int(shown[RANK_COLUMN].notna().sum())}"


MODEL_FACTS: tuple[str, ...] = ("name", "path", "revision", "type", "params", "precision",
                                "base_model", "license", "training_data")
RUN_FACTS: tuple[str, ...] = ("id", "source", "reference", "backend", "tasks", "format",
                              "setting", "status", "complete", "coverage", "started_at",
                              "finished_at", "recorded_at")
_JSON_FACTS = ("provenance", "generation_config", "mean", "protocol")
# What SQLAlchemy would parse on fetch (and raise on, for a damaged row): read here instead.
_READERS = {"params": read_number, "tasks": read_json, "started_at": read_time,
            "finished_at": read_time, "recorded_at": read_time,
            **dict.fromkeys(_JSON_FACTS, read_json)}


def _column(table, name: str):
    return raw(getattr(table, name)) if name in _READERS else getattr(table, name)


def run_details(engine: Engine, run_id: int) -> dict | None:
    """Everything stored about one run and its model (provenance included, any credential
    in a URL masked), and `unreadable`: the fields whose stored value cannot be read (None
    in the rest)."""
    names = [*MODEL_FACTS, *RUN_FACTS, *_JSON_FACTS]
    query = (select(*(_column(Model, c) for c in MODEL_FACTS),
                    *(_column(Run, c) for c in (*RUN_FACTS, *_JSON_FACTS)))
             .join_from(Run, Model, Run.model_id == Model.id).where(Run.id == run_id))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    values, unreadable = {}, []
    for name, value in zip(names, row, strict=True):
        value, ok = _READERS[name](value) if name in _READERS else (value, True)
        if name in _JSON_FACTS and not isinstance(value, (dict, type(None))):
            value, ok = None, False  # valid JSON, but not the object the run stored
        values[name] = value
        if not ok:
            unreadable.append(name)
    return {
        "model": {c: values[c] for c in MODEL_FACTS},
        "run": {c: values[c] for c in RUN_FACTS},
        # runs recorded before URLs were masked may hold a base_url with a password or key
        "provenance": masked(values["provenance"] or {}),
        "generation_config": masked(values["generation_config"] or {}),
        "mean": values["mean"] or {},
        "protocol": values["protocol"] or {},
        "unreadable": unreadable,
    }


def masked(value):
    """`value` (stored JSON) with every URL in its text masked (`core.urls.mask_text`)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


# --------------------------------------------------------------------------- model page


SAMPLE_COLUMNS: tuple[str, ...] = (
    "set", "doc_id", "gold_label", "label", "correct", "post", "generation", "gold",
    *QUALITY_COLUMNS,
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
               Prompt.text, Sample.generation, Sample.gold,
               *(getattr(Sample, c) for c in QUALITY_COLUMNS))
        .outerjoin(Prompt, Sample.prompt_hash == Prompt.hash)
        .where(*conditions)
        .order_by(_SET_ORDER, Sample.doc_id)
        .limit(max(1, int(limit)))
        .offset(max(0, int(offset)))
    )
    with engine.connect() as conn:
        total = conn.scalar(select(func.count(Sample.id)).where(*conditions)) or 0
        rows = conn.execute(page).all()
    return rows_frame(rows, SAMPLE_COLUMNS), int(total)


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


# --------------------------------------------------------------------------- where it errs

POST_CUT = 300  # characters of the prompt shown beside an error


def set_errors(engine: Engine, run_id: int) -> dict[str, dict]:
    """Per set with stored samples, in SET_NAMES order: its confusion matrix (a frame, gold
    classes down, labels as read across, "unreadable" last) and per-class F1 (a frame:
    class, F1, precision, recall (percent), support), by `scoring.confusion.error_profile`,
    the function that writes them into the score JSON."""
    from imhi_bench.scoring.confusion import error_profile
    from imhi_bench.store.labels import run_labels

    order = {name: i for i, name in enumerate(SET_NAMES)}
    out = {}
    per_set = run_labels(engine, [run_id]).get(run_id, {})
    for name in sorted(per_set, key=lambda n: order.get(n, len(order))):
        rows = per_set[name]
        profile = error_profile(name, rows.gold.tolist(), rows.label.tolist())
        conf = profile["confusion"]
        matrix = pd.DataFrame(conf["counts"], columns=conf["read"])
        matrix.insert(0, "gold \\ read", conf["gold"])
        classes = pd.DataFrame([{"class": c, **v} for c, v in profile["per_class"].items()])
        out[name] = {"confusion": matrix, "per_class": classes,
                     "cells": [(g, r, n) for g, counts in zip(conf["gold"], conf["counts"],
                                                              strict=True)
                               for r, n in zip(conf["read"], counts, strict=True)
                               if n and r != g]}
    return out


def how_read(set_name: str, generation: str | None, extra: dict | None) -> str:
    """How a sample's label was read: by the classifier labeler, or the rule and sentence
    that decided (`labels.reader.explain_label`)."""
    from imhi_bench.scoring.labeler.explicit import CLASSIFIER
    from imhi_bench.scoring.labels.reader import explain_label
    from imhi_bench.scoring.pipeline import LABEL_BY

    if isinstance(extra, dict) and extra.get(LABEL_BY) == CLASSIFIER:
        return "by the classifier labeler"
    label, rule, sentence = explain_label(set_name, generation)
    if label is None:
        return f"no label could be read ({rule})"
    return f"{rule}: {sentence!r}" if sentence else rule


def cell_samples(engine: Engine, run_id: int, set_name: str, gold: str, read: str,
                 limit: int = 3) -> pd.DataFrame:
    """The first `limit` samples (by doc id) of one confusion cell: gold class `gold`, read
    as `read` (`scoring.confusion.UNREADABLE`: no label), with the prompt cut to POST_CUT
    characters and how the label was read."""
    from imhi_bench.scoring.confusion import UNREADABLE

    read_is = Sample.label.is_(None) if read == UNREADABLE else Sample.label == read
    query = (select(Sample.doc_id, Prompt.text, Sample.generation, Sample.gold, raw(Sample.extra))
             .outerjoin(Prompt, Sample.prompt_hash == Prompt.hash)
             .where(Sample.run_id == run_id, Sample.set_name == set_name,
                    Sample.gold_label == gold, read_is)
             .order_by(Sample.doc_id).limit(max(1, int(limit))))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame({
        "doc_id": [r[0] for r in rows],
        "post (cut)": [(r[1] or "")[:POST_CUT] + ("…" if len(r[1] or "") > POST_CUT else "")
                       for r in rows],
        "generation": [r[2] for r in rows],
        "gold": [r[3] for r in rows],
        "how the label was read": [how_read(set_name, r[2], read_json(r[4])[0]) for r in rows],
    }, columns=["doc_id", "post (cut)", "generation", "gold", "how the label was read"])


# --------------------------------------------------------------------------- paired


PAIRED_COLUMNS: tuple[str, ...] = ("set", "metric", "n", "A", "B", "B - A", "95% CI",
                                   "p bootstrap", "p permutation")
_METRIC_TITLES = {"weighted_f1": "weighted F1", "accuracy": "accuracy", "macro_f1": "macro F1"}


def paired_comparison(engine: Engine, run_a: int, run_b: int) -> tuple[pd.DataFrame, str]:
    """`imhi-bench compare`'s numbers for two stored runs (`scoring.compare.compare_runs`
    on their stored samples), one row per set (and the mean) and metric, and one line on
    their protocols.  An empty frame and the reason when they share no sample."""
    from imhi_bench.core.errors import ImhiError
    from imhi_bench.scoring.compare import compare_runs, protocol_note
    from imhi_bench.store.labels import run_labels, run_provenance

    labels = run_labels(engine, [run_a, run_b])
    if run_a not in labels or run_b not in labels:
        return pd.DataFrame(columns=PAIRED_COLUMNS), \
            "No paired comparison: a run without stored samples (a reported row?)."
    try:
        result = compare_runs(*({s: v.as_dict() for s, v in labels[r].items()}
                                for r in (run_a, run_b)))
    except ImhiError as e:
        return pd.DataFrame(columns=PAIRED_COLUMNS), f"No paired comparison: {e}"
    blocks = dict(result["sets"])
    if len(blocks) > 1:
        blocks[f"mean ({len(result['mean']['sets'])} sets)"] = result["mean"]
    rows = [(name, title, block.get("n"), m["a"], m["b"], m["diff"],
             f"{m['ci'][0]:.2f} to {m['ci'][1]:.2f}", m["p_bootstrap"], m["p_permutation"])
            for name, block in blocks.items()
            for key, title in _METRIC_TITLES.items() for m in [block[key]]]
    note = protocol_note(run_provenance(engine, run_a), run_provenance(engine, run_b))
    return rows_frame(rows, PAIRED_COLUMNS), note
