"""A seeded sample of rows that keeps their order: the labeler, the trainer and the
discriminative baseline all subsample this way, so one seed means one sample everywhere."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def seeded_sample(rows: Sequence[T], n: int | None, seed: int) -> list[T]:
    """At most `n` of `rows`, a seeded sample kept in their order; all of them if n is None."""
    if n is None or n >= len(rows):
        return list(rows)
    picked = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in picked]
