"""The queue page's frames: every submission, and the columns each state shows."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

from imhi_bench.queue.jobs import list_submissions

QUEUE_COLUMNS: tuple[str, ...] = (
    "id", "name", "model", "revision", "precision", "backend", "adapter", "status", "runs",
    "attempts", "submitted", "claimed", "heartbeat", "finished", "worker", "submitter", "error",
)
QUEUE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("RUNNING", "Running"), ("PENDING", "Pending"), ("FAILED", "Failed"),
    ("FINISHED", "Finished"),
)


def load_queue(engine: Engine) -> pd.DataFrame:
    """Every submission, oldest first (`list_submissions`), as a frame."""
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
