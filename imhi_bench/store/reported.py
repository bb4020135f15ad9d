"""Weighted F1 (percent) as reported in the MentaLLaMA paper, and `load_reported`, which
writes them into the store as "reported" runs so reproduced numbers can be read against
them.  Only `imhi-bench db init` calls it: opening or upgrading a store inserts no rows.

Source: Yang et al., "MentaLLaMA: Interpretable Mental Health Analysis on Social Media with
Large Language Models", WWW 2024 (arXiv 2309.13567), Table 2 and Table 3.  A set the paper
leaves blank ("–") is simply absent here: absent is not zero.
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from imhi_bench.scoring.protocol import stored_protocol
from imhi_bench.store.engine import StoreTarget, write_session
from imhi_bench.store.record import get_or_create_model
from imhi_bench.store.tables import Model, Run, SetResult
from imhi_bench.store.validate import check_set_name, model_row

REFERENCE = "Yang et al., MentaLLaMA, WWW 2024 (arXiv 2309.13567)"
# What the leaderboard (its page and `imhi-bench leaderboard`) says when a store has none of
# the paper's rows: a store is created empty, and they come only from `db init`.
NOT_LOADED = "The paper's reported rows are not in this store: imhi-bench db init loads them."

# Each entry: the model (store `models` columns), the paper table, the setting the paper
# names, and the weighted F1 per set keyed by the set's name in `imhi_bench.benchmark.sets`.
# (model, table) identifies a reported run.
REPORTED: tuple[dict, ...] = (
    # Table 2: models trained on the full IMHI training data, and ChatGPT few-shot.
    {
        "table": "Table 2",
        "model": {"name": "MentalRoBERTa", "path": "mental/mental-roberta-base",
                  "type": "discriminative", "params": 125_000_000, "training_data": "IMHI"},
        "setting": "",
        "weighted_f1": {"CAMS": 47.62, "CLP": 69.71, "DR": 94.23, "dreaddit": 81.76,
                        "loneliness": 85.33, "SAD": 68.44, "swmh": 72.16, "t-sid": 89.01},
    },
    {
        "table": "Table 2",
        "model": {"name": "MentaLLaMA-chat-13B", "path": "klyang/MentaLLaMA-chat-13B",
                  "type": "fine-tuned", "params": 13_000_000_000, "base_model": "LLaMA2-chat-13B",
                  "training_data": "IMHI"},
        "setting": "",
        "weighted_f1": {"CAMS": 45.52, "CLP": 52.61, "DR": 85.68, "dreaddit": 75.79,
                        "Irf": 76.49, "loneliness": 85.1, "MultiWD": 75.11, "SAD": 63.62,
                        "swmh": 71.7, "t-sid": 75.31},
    },
    {
        "table": "Table 2",
        "model": {"name": "ChatGPT", "path": "gpt-3.5-turbo", "type": "API",
                  "training_data": "other"},
        "setting": "few-shot",
        "weighted_f1": {"CAMS": 44.46, "CLP": 61.63, "DR": 84.22, "dreaddit": 75.38,
                        "Irf": 43.31, "loneliness": 58.78, "MultiWD": 64.93, "SAD": 63.56,
                        "swmh": 60.19, "t-sid": 43.95},
    },
    # Table 3: the unseen sets (held out of IMHI-general).
    {
        "table": "Table 3",
        "model": {"name": "LLaMA2-13B", "type": "base", "params": 13_000_000_000,
                  "training_data": "other"},
        "setting": "zero-shot",
        "weighted_f1": {"CAMS": 14.64, "dreaddit": 36.28, "Irf": 38.89, "t-sid": 25.27},
    },
    {
        "table": "Table 3",
        "model": {"name": "ChatGPT", "path": "gpt-3.5-turbo", "type": "API",
                  "training_data": "other"},
        "setting": "zero-shot",
        "weighted_f1": {"CAMS": 33.85, "dreaddit": 71.79, "Irf": 41.33, "t-sid": 33.30},
    },
    # Table 3's MentaLLaMA models were trained on IMHI-general, so they are other weights
    # than the released IMHI-trained checkpoints: named apart so the two never merge.
    {
        "table": "Table 3",
        "model": {"name": "MentaLLaMA-chat-7B (IMHI-general)", "type": "fine-tuned",
                  "params": 7_000_000_000, "base_model": "LLaMA2-chat-7B",
                  "training_data": "IMHI-general"},
        "setting": "",
        "weighted_f1": {"CAMS": 20.19, "dreaddit": 67.42, "Irf": 54.6, "t-sid": 64.76},
    },
    {
        "table": "Table 3",
        "model": {"name": "MentaLLaMA-chat-13B (IMHI-general)", "type": "fine-tuned",
                  "params": 13_000_000_000, "base_model": "LLaMA2-chat-13B",
                  "training_data": "IMHI-general"},
        "setting": "",
        "weighted_f1": {"CAMS": 27.22, "dreaddit": 71.98, "Irf": 65.51, "t-sid": 70.7},
    },
)


def _write_reported(session: Session) -> int:
    """Create or refresh the paper-reported runs from REPORTED."""
    keep: set[int] = set()
    for entry in REPORTED:
        model = get_or_create_model(session, model_row(entry["model"]))
        reference = f"{REFERENCE}, {entry['table']}"
        run = session.scalars(
            select(Run).where(Run.model_id == model.id, Run.source == "reported",
                              Run.reference == reference)
        ).first()
        if run is None:
            run = Run(model_id=model.id, source="reported", reference=reference)
            session.add(run)
        rows = [{"set_name": check_set_name(name, "reported"), "weighted_f1": float(value)}
                for name, value in entry["weighted_f1"].items()]
        run.backend = "paper"
        run.tasks = [r["set_name"] for r in rows]
        # The paper's test sets are the released IMHI test data, the instruction files.
        run.format = "instruction"
        run.setting = entry["setting"]
        run.status = "finished"
        run.provenance = {"source": reference}
        # their own protocol (MentalBERT labels, prompts as IMHI.py): never ranked with ours
        run.protocol = stored_protocol("reported", None)
        run.protocol_id = run.protocol["id"]
        # The paper scored the full test sets: its rows rank beside complete reproduced runs.
        run.complete, run.coverage = True, None
        session.flush()
        session.execute(delete(SetResult).where(SetResult.run_id == run.id))
        session.execute(insert(SetResult), [{**r, "run_id": run.id} for r in rows])
        keep.add(run.id)
    stale = select(Run.id).where(Run.source == "reported", Run.id.not_in(keep))
    session.execute(delete(SetResult).where(SetResult.run_id.in_(stale)))
    session.execute(delete(Run).where(Run.source == "reported", Run.id.not_in(keep)))
    return len(keep)


def load_reported(session_or_url: StoreTarget = None) -> int:
    """Load (or refresh, idempotently) the paper-reported rows; returns how many runs."""
    with write_session(session_or_url) as session:
        return _write_reported(session)


def reported_run_count(factory: sessionmaker, name: str | None = None) -> int:
    """How many paper-reported runs the store holds (0 until `imhi-bench db init`), of the
    model `name` only when given."""
    query = select(func.count()).select_from(Run).where(Run.source == "reported")
    if name is not None:
        query = query.join(Model, Model.id == Run.model_id).where(Model.name == name)
    with factory() as session:
        return session.scalar(query) or 0
