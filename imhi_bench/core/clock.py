"""The one clock the store and the queue write times with."""

from __future__ import annotations

import datetime as _dt


def utcnow() -> _dt.datetime:
    """Now as naive UTC: the store keeps naive UTC times, so every database (SQLite has no
    time zones) compares them alike."""
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
