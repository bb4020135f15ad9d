"""Resamples shared by every run of a set: the bootstrap draws behind each run's CI, the
paired comparison of two runs (`scoring.compare`) and the leaderboard's rank bands
(`scoring.bands`), and the swap masks of the permutation test.

A set's draws depend only on the set's name, its sample count, the seed and the number of
draws (`set_seed`), so two runs of a set scored on the same samples are resampled with the
same indices: their difference is paired, and their own CIs use those draws too.  The draws
are kept (`lru_cache`, a dozen: about 33 MB for the ten sets in full) as per-sample
counts, one row per draw, so any number of runs is resampled with one matrix product
(`weights @ per-sample indicators`) rather than by indexing every run's arrays again.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

N_BOOTSTRAP = 1000
N_PERMUTATIONS = 1000


def set_seed(set_name: str, seed: int) -> int:
    """A per-set seed that does not depend on which other sets are scored."""
    return (seed * 1_000_003 + zlib.crc32(set_name.encode())) % 2**32


def draw_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) indices drawn with replacement from range(n): the bootstrap's resamples.
    `seed` is the set's (`set_seed`)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


@lru_cache(maxsize=12)
def bootstrap_weights(set_name: str, n: int, seed: int = 0,
                      n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """(n_boot, n) float32: how often each sample is drawn in each resample of the set, the
    same draws as the set's CI (`draw_indices` with `set_seed`).  Read-only: shared."""
    idx = draw_indices(n, n_boot, set_seed(set_name, seed))
    keys = (np.arange(n_boot)[:, None] * n + idx).ravel()
    weights = np.bincount(keys, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=12)
def swap_masks(set_name: str, n: int, seed: int = 0,
               n_perm: int = N_PERMUTATIONS) -> np.ndarray:
    """(n_perm, n) float32 of 0/1: which samples swap their two runs' predictions in each
    shuffle of the approximate-randomization test (each with probability 1/2).  Seeded per
    set, on a stream of its own (not the bootstrap's).  Read-only: shared."""
    rng = np.random.default_rng([set_seed(set_name, seed), 1])
    masks = rng.integers(0, 2, size=(n_perm, n)).astype(np.float32)
    masks.flags.writeable = False
    return masks
