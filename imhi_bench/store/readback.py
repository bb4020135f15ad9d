"""Reading stored values back without trusting them: a damaged row (SQLite keeps any text in
any column: an edited file, a bad import, an older writer) must not take down whoever reads
the whole store, the leaderboard above all.

`raw(column)` selects a column as the driver hands it over, past SQLAlchemy's own parsing
(its DateTime and JSON types raise on a bad value while the rows are fetched, before any
caller could catch it for one row); `read_json`, `read_time` and `read_number` then parse
one value each and say whether it could be read: (value, True), or (None, False) for a value
that is there but unreadable (shown as missing, and counted, by the reader).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

from sqlalchemy import String, type_coerce
from sqlalchemy.sql.elements import ColumnElement


def raw(column) -> ColumnElement:
    """`column` selected as stored, under its own name: no JSON or date parsing on fetch."""
    return type_coerce(column, String).label(column.key)


def read_json(value: Any) -> tuple[Any, bool]:
    """A JSON column's stored value: text parsed, or what a driver already parsed."""
    if value is None or isinstance(value, (dict, list, int, float, bool)):
        return value, True
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    try:
        return json.loads(value), True
    except (TypeError, ValueError, RecursionError):
        return None, False


def read_time(value: Any) -> tuple[_dt.datetime | None, bool]:
    """A DateTime column's stored value (SQLite: ISO text, as SQLAlchemy writes it), as
    naive UTC like every time in the store (one with a zone is converted)."""
    if value is None:
        return None, True
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    elif not isinstance(value, _dt.datetime):
        try:
            value = _dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None, False
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value, True


def read_number(value: Any) -> tuple[float | int | None, bool]:
    """A numeric column's stored value: a number as stored (NaN too), text as a float."""
    if value is None or isinstance(value, (int, float)):
        return value, True
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None, False
    if isinstance(value, str) and not math.isfinite(number):
        return None, False  # "inf" or "nan" as text: no count or score any writer stores
    return number, True
