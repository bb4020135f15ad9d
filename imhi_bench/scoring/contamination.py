"""The statistics of the contamination check (`imhi_bench.runs.contamination` computes the
token log-probabilities they read): per item, the mean token log-probability of the gold
response and its Min-K% (the mean of the lowest K% of them); per set, test items against
an equally sized sample of held-out items from the same source, one-sided (does the model
score the test items higher?), and a verdict.

Why these thresholds: test and held-out items are equally unseen by a model trained as the
paper's were, so for such a model their scores are draws from one distribution and the
p-value is uniform.  A p-value is taken for each of the two statistics and the smaller one,
Bonferroni-corrected over both statistics and over every set checked, decides: `p < 0.01`
is suspect (at most a 1% chance that a clean model is flagged at all, whatever the number of
sets), `p < 1e-4` with a large standardized effect (Cohen's d >= 0.8) contaminated.  A small
effect with a tiny p (many items, a slight shift) stays suspect: an operator looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIN_K = 0.2  # Min-K%: the lowest 20% of a response's token log-probabilities (Shi et al. 2024)
SUSPECT_P = 0.01
CONTAMINATED_P = 1e-4
CONTAMINATED_D = 0.8  # Cohen's "large"
STATISTICS = ("loglik", "min_k")  # per-item statistics, in report order
CLEAN, SUSPECT, CONTAMINATED = "clean", "suspect", "contaminated"
VERDICTS = (CLEAN, SUSPECT, CONTAMINATED)  # in increasing order of concern
FLAGGED = (SUSPECT, CONTAMINATED)
EXACT_MAX_PAIRS = 2500  # test x held-out pairs up to which the U test's p is exact


def item_scores(logprobs: Sequence[float], k: float = MIN_K) -> dict[str, float]:
    """Mean token log-probability of one response, and the mean of its lowest `k` share
    (at least one token)."""
    lp = np.sort(np.asarray(logprobs, dtype="float64"))
    if lp.size == 0:
        return {"loglik": math.nan, "min_k": math.nan}
    n = max(1, math.ceil(k * lp.size))
    return {"loglik": float(lp.mean()), "min_k": float(lp[:n].mean())}


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a - mean b) / pooled standard deviation; 0 when both are constant and equal."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    if len(a) < 2 or len(b) < 2:
        return math.nan
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                       / (len(a) + len(b) - 2))
    diff = float(a.mean() - b.mean())
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def compare(test: Sequence[float], held: Sequence[float]) -> dict[str, float]:
    """Test items against held-out ones: mean difference, Cohen's d, the share of
    (test, held-out) pairs where the test item scores higher (AUC = U / n1 n2), and the
    one-sided Mann-Whitney U p-value of "test scores higher"."""
    from scipy.stats import mannwhitneyu

    t = [x for x in test if math.isfinite(x)]
    h = [x for x in held if math.isfinite(x)]
    if not t or not h:
        return {"n_test": len(t), "n_held_out": len(h), "test_mean": math.nan,
                "held_out_mean": math.nan, "effect": math.nan, "d": math.nan,
                "auc": math.nan, "p": math.nan}
    # exact for small samples (--limit): the normal approximation's p cannot go below
    # ~1e-5 at 12 + 12 items even when every test item scores above every held-out one
    exact = len(t) * len(h) <= EXACT_MAX_PAIRS and len(set(t) | set(h)) == len(t) + len(h)
    u, p = mannwhitneyu(t, h, alternative="greater", method="exact" if exact else "asymptotic")
    return {
        "n_test": len(t), "n_held_out": len(h),
        "test_mean": float(np.mean(t)), "held_out_mean": float(np.mean(h)),
        "effect": float(np.mean(t) - np.mean(h)), "d": cohens_d(t, h),
        "auc": float(u) / (len(t) * len(h)), "p": float(p),
    }


def compare_sets(test: Sequence[dict], held: Sequence[dict]) -> dict[str, dict]:
    """`compare` for each statistic of `item_scores` rows."""
    return {s: compare([r[s] for r in test], [r[s] for r in held]) for s in STATISTICS}


def differences(model: Sequence[dict], base: Sequence[dict]) -> list[dict]:
    """Per item, model score minus base score: what the checkpoint's training added, with
    what is intrinsic to an item (its length, how predictable it is) taken out."""
    return [{s: m[s] - b[s] for s in STATISTICS} for m, b in zip(model, base, strict=True)]


def decide(comparison: dict[str, dict], tests: int) -> dict:
    """The verdict of one set's comparison (`compare_sets`), with its p-value Bonferroni-
    corrected over the statistics and the `tests` sets checked (see the module docstring)."""
    finite = [c for c in comparison.values() if math.isfinite(c["p"])]
    if not finite:
        return {"verdict": None, "p_adjusted": None, "d": None, "statistic": None}
    best = min(finite, key=lambda c: (c["p"], -c["d"]))
    name = next(s for s, c in comparison.items() if c is best)
    p_adj = min(1.0, best["p"] * len(STATISTICS) * max(1, tests))
    if p_adj < CONTAMINATED_P and best["d"] >= CONTAMINATED_D:
        verdict = CONTAMINATED
    elif p_adj < SUSPECT_P:
        verdict = SUSPECT
    else:
        verdict = CLEAN
    return {"verdict": verdict, "p_adjusted": p_adj, "d": best["d"], "statistic": name}


def worst(verdicts: Sequence[str | None]) -> str | None:
    """The most concerning verdict of several (None when there is none)."""
    known = [v for v in verdicts if v in VERDICTS]
    return max(known, key=VERDICTS.index) if known else None


def flagged(contamination) -> bool:
    """A run's recorded check (provenance "contamination") keeps it out of the ranking:
    suspect or contaminated, and not cleared by an operator."""
    if not isinstance(contamination, dict):
        return False
    return contamination.get("verdict") in FLAGGED and not contamination.get("cleared")


def badge(contamination) -> str:
    """The leaderboard's contamination column: empty for a clean or unchecked run."""
    if not isinstance(contamination, dict) or contamination.get("verdict") not in FLAGGED:
        return ""
    p = contamination.get("p_adjusted")
    text = contamination["verdict"] + (f" (p={p:.1g})" if isinstance(p, float) else "")
    return text + (": cleared" if contamination.get("cleared") else "")
