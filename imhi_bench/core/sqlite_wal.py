"""Switching a SQLite file to WAL journal mode when several connections may open it at once."""

from __future__ import annotations

import sqlite3
import time
from typing import Protocol


class _Executes(Protocol):
    def execute(self, sql: str, /) -> object: ...


def enable_wal(db: _Executes, timeout_s: float) -> None:
    """`PRAGMA journal_mode=WAL` on `db` (a sqlite3 connection or cursor), retried.

    Switching a new file to WAL takes an exclusive lock.  When two connections open a new
    file at once, both hold a shared lock and want it; SQLite sees the deadlock and answers
    "database is locked" to one of them at once, without waiting out the busy timeout.  The
    other then converts the file, so retrying (for up to `timeout_s`) succeeds.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.1)
