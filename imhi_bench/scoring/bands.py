"""Rank bands: which ranks a run could take, given the noise of the test sets.

Runs are compared on the unweighted mean of weighted F1 over the ranked sets, every pair on
the same samples (the doc ids all of them scored) and the same bootstrap draws (each set's
own, `scoring.resample`: the draws behind each run's CI).  For two runs i and j the paired
difference d = mean_i - mean_j has a bootstrap standard error se (the spread of d over the
draws); its two-sided p-value is the normal approximation 2 * (1 - Phi(|d| / se)).  (A
percentile p-value cannot go below 2 / (draws + 1), too coarse for the correction below.)

Correction: Holm's step-down over all R(R-1)/2 pairs, family-wise error 5%: the pairs'
p-values sorted, the i-th smallest (from 1) significant while it and every smaller one
is <= 0.05 / (m - i + 1).  Holm controls the same error as Bonferroni and rejects at
least as much.

A run's band is then

    rank  = 1 + the number of runs significantly better than it   (its best rank)
    worst = R - the number of runs significantly worse than it
          = 1 + the number of other runs not significantly worse  (its worst rank)

so runs that cannot be told apart share ranks: two runs a noise apart, above the rest,
are both "1–2".  A run significantly better than every other is "1".
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from imhi_bench.scoring.compare import encode_runs, point_scores, scores_under
from imhi_bench.scoring.resample import N_BOOTSTRAP, bootstrap_weights

ALPHA = 0.05
CORRECTION = "Holm"
# one line saying how bands are made, for pages and reports
METHOD = (f"paired bootstrap on the mean weighted F1 over the ranked sets, {CORRECTION}-"
          f"corrected over every pair of rows (family-wise error {ALPHA:.0%})")


@dataclass(frozen=True)
class Band:
    rank: int  # 1 + runs significantly better
    worst: int  # the worst rank it could take: runs - runs significantly worse
    mean: float  # mean weighted F1 (percent) over the ranked sets, on the shared samples

    @property
    def text(self) -> str:
        return str(self.rank) if self.rank == self.worst else f"{self.rank}–{self.worst}"


def holm(p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Which of the p-values Holm's step-down rejects at family-wise error `alpha`."""
    m = p.size
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha / (m - np.arange(m))
    reject = np.zeros(m, dtype=bool)
    reject[order] = np.cumprod(passed).astype(bool)  # stop at the first one that fails
    return reject


def mean_replicates(
    runs: Sequence[Mapping[str, tuple[Sequence[str], Sequence[str | None]]]],
    sets: Sequence[str],
    *,
    seed: int = 0,
    n_boot: int = N_BOOTSTRAP,
) -> tuple[np.ndarray, np.ndarray]:
    """(point means (R,), bootstrap replicates of the means (R, n_boot)), weighted F1 in
    percent averaged over `sets`; each run maps set -> (gold, predictions) over the same
    doc ids in the same order as every other run."""
    points, reps = [], []
    for name in sets:
        gold = np.asarray(runs[0][name][0], dtype=object)
        if any(r[name][0] is not runs[0][name][0]
               and not np.array_equal(np.asarray(r[name][0], dtype=object), gold)
               for r in runs[1:]):
            raise ValueError(f"{name}: the runs' gold labels differ: pass every run's "
                             "labels over the same doc ids, in the same order")
        y_true, y_pred, k = encode_runs(gold.tolist(), [r[name][1] for r in runs])
        points.append(point_scores(y_true, y_pred, k)["weighted_f1"])
        weights = bootstrap_weights(name, len(gold), seed, n_boot)
        reps.append(scores_under(weights, y_true, y_pred, k)["weighted_f1"])
    return np.mean(points, axis=0), np.mean(reps, axis=0)


def significantly_better(points: np.ndarray, reps: np.ndarray,
                         alpha: float = ALPHA) -> np.ndarray:
    """(R, R) bool: [i, j] when run i is significantly better than run j (see the module
    docstring: normal-approximation p from the paired bootstrap, Holm over all pairs)."""
    r = points.size
    cov = np.atleast_2d(np.cov(reps)) if reps.shape[1] > 1 else np.zeros((r, r))
    var = np.diag(cov)
    i, j = np.triu_indices(r, k=1)
    d = points[i] - points[j]
    se = np.sqrt(np.clip(var[i] + var[j] - 2 * cov[i, j], 0, None))
    # no spread at all: the draws cannot tell the two apart
    z = np.divide(np.abs(d), se, out=np.zeros_like(d), where=se > 1e-12)
    p = np.array([math.erfc(v / math.sqrt(2)) for v in z])
    sig = holm(p, alpha) if p.size else np.zeros(0, dtype=bool)
    better = np.zeros((r, r), dtype=bool)
    better[i[sig & (d > 0)], j[sig & (d > 0)]] = True
    better[j[sig & (d < 0)], i[sig & (d < 0)]] = True
    return better


def rank_bands(
    runs: Mapping[Hashable, Mapping[str, tuple[Sequence[str], Sequence[str | None]]]],
    sets: Sequence[str],
    *,
    seed: int = 0,
    n_boot: int = N_BOOTSTRAP,
    alpha: float = ALPHA,
) -> dict[Hashable, Band]:
    """Each run's rank band on the mean weighted F1 over `sets`.  `runs`: run key -> set
    -> (gold labels, labels read; None = unreadable), every run's arrays of a set over the
    same doc ids in the same order (the samples all of them scored)."""
    keys = list(runs)
    if not keys:
        return {}
    if n_boot < 2:
        raise ValueError("rank bands need a bootstrap: n_boot >= 2")
    points, reps = mean_replicates([runs[k] for k in keys], list(sets), seed=seed,
                                   n_boot=n_boot)
    better = significantly_better(points, reps, alpha)
    n = len(keys)
    return {
        key: Band(rank=1 + int(better[:, x].sum()), worst=n - int(better[x, :].sum()),
                  mean=round(float(points[x]), 2))
        for x, key in enumerate(keys)
    }
