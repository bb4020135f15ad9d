"""Cutting a longest-first order of samples into batches of about equal padded size."""

from __future__ import annotations

from collections.abc import Sequence


def budget_batches(order: Sequence[int], widths: Sequence[float], tokens: float,
                   cap: int | None = None) -> list[list[int]]:
    """Consecutive runs of `order` (widest first), each of n = tokens // width of its
    first (widest) sample items, at least 1 and at most `cap`: long samples go in small
    batches and short ones in large, so every batch pads to about `tokens` and little is
    padding."""
    out: list[list[int]] = []
    i = 0
    while i < len(order):
        n = max(1, int(tokens // widths[order[i]]))
        if cap is not None:
            n = min(n, cap)
        out.append(list(order[i:i + n]))
        i += n
    return out
