"""The app's pages behind one guard: an exception nothing else handled is one line for the
visitor, with a reference to find it by, and its traceback goes to the server's log only
(a traceback tells a visitor nothing useful and an attacker a lot).  `imhi-bench
leaderboard` also starts Streamlit with `client.showErrorDetails none`, for anything that
fails outside the guard."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

import streamlit as st
from streamlit.logger import get_logger

LOG = get_logger("imhi_bench.leaderboard")
PAGE_FAILED = ("This page could not be shown: an unexpected error (reference {ref}; the "
               "details are in the server's log). Reload the page; if it stays, tell whoever "
               "runs this leaderboard, with the reference.")


def guarded(page: Callable[[], None]) -> Callable[[], None]:
    """`page` (a function that draws the page), its unexpected errors shown as one line."""
    @functools.wraps(page)
    def draw() -> None:
        try:
            page()
        except Exception:  # Streamlit's own stop and rerun are BaseExceptions: they pass
            ref = uuid.uuid4().hex[:8]
            LOG.exception("leaderboard page failed (reference %s)", ref)
            st.error(PAGE_FAILED.format(ref=ref))
    return draw
