"""Is run B better than run A?  A paired comparison on the samples both scored.

Per set (same set, same doc ids), and for the unweighted mean over the sets both runs
cover, the difference B - A in weighted F1, accuracy and macro F1 (percentage points) with

- a paired bootstrap: both runs resampled with the same indices (the set's, as each run's
  own CI is drawn: `scoring.resample`), the 95% percentile CI of the difference and a
  two-sided p-value, p = 2 min(P*(d <= 0), P*(d >= 0)) with the +1 correction, at most 1;
- an approximate-randomization (permutation) test: each sample's two predictions are
  swapped with probability 1/2, p = (1 + #{|d'| >= |d|}) / (1 + shuffles), the test NLP
  practice recommends for F1-type metrics (Riezler & Maxwell 2005; Dror et al. 2018).

The mean's replicates average the sets' draw by draw, as `metrics.mean_over_sets` does;
its shuffles average the sets' shuffles one by one.

Everything runs on per-class counts: a sample is a row of indicators (a true positive of
class c, a prediction of class c), and the counts of every resample of every run come from
one matrix product with the resample weights.  `tests/test_compare.py` checks this against
a plain loop over resamples with scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from imhi_bench.benchmark.sets import SET_NAMES
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.metrics import CI_LEVEL, encode, encode_pred, f1_from_counts
from imhi_bench.scoring.resample import (
    N_BOOTSTRAP,
    N_PERMUTATIONS,
    bootstrap_weights,
    swap_masks,
)

METRICS: tuple[str, ...] = ("weighted_f1", "accuracy", "macro_f1")
# what a set holds per run: doc id -> (gold label, label read; None = unreadable)
Labels = Mapping[int, tuple[str, "str | None"]]


# --------------------------------------------------------------------------- counts


def encode_runs(gold: Sequence[str],
                preds: Sequence[Sequence[str | None]]) -> tuple[np.ndarray, np.ndarray, int]:
    """(gold codes (n,), prediction codes (runs, n), k): classes as `metrics.encode` numbers
    them (the gold classes, sorted; anything else, unreadable included, is k)."""
    y_true, _, classes = encode(gold, ())
    index = {c: i for i, c in enumerate(classes)}
    y_pred = np.empty((len(preds), len(gold)), dtype=np.int64)
    for row, pred in enumerate(preds):
        y_pred[row] = encode_pred(index, pred)
    return y_true, y_pred, len(classes)


def _indicators(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(n, runs * 2k) float32: per run, k true-positive columns then k prediction columns."""
    classes = np.arange(k)
    predicted = y_pred[:, :, None] == classes  # (runs, n, k)
    hit = predicted & (y_true[None, :, None] == classes)
    both = np.concatenate([hit, predicted], axis=2)  # (runs, n, 2k)
    return np.ascontiguousarray(both.transpose(1, 0, 2)).reshape(len(y_true), -1) \
        .astype(np.float32)


def _scores(counts: np.ndarray, support: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Metrics (percent) from (..., runs * 2k) counts and (..., k) support: (..., runs)."""
    c = counts.reshape(*counts.shape[:-1], -1, 2, k)
    w, m, a = f1_from_counts(c[..., 0, :], support[..., None, :], c[..., 1, :])
    return {"weighted_f1": w * 100, "accuracy": a * 100, "macro_f1": m * 100}


def scores_under(weights: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                 k: int) -> dict[str, np.ndarray]:
    """Each metric (percent) of every run (rows of `y_pred`) under every row of `weights`
    (how often each sample counts, e.g. `resample.bootstrap_weights`): metric -> (runs,
    rows of weights).  Counts are whole numbers, exact in float32 up to 2**24."""
    gold = (y_true[:, None] == np.arange(k)).astype(np.float32)
    support = weights @ gold  # (B, k)
    counts = weights @ _indicators(y_true, y_pred, k)  # (B, runs * 2k)
    return {name: v.T for name, v in _scores(counts, support, k).items()}


def point_scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each metric (percent) of every run on all its samples: metric -> (runs,)."""
    ones = np.ones((1, len(y_true)), dtype=np.float32)
    return {name: v[:, 0] for name, v in scores_under(ones, y_true, y_pred, k).items()}


def _permuted_diffs(set_name: str, y_true: np.ndarray, y_pred: np.ndarray, k: int,
                    seed: int, n_perm: int) -> dict[str, np.ndarray]:
    """B' - A' of each metric under each shuffle (n_perm,): A' takes B's prediction where
    the swap mask is 1, B' takes the other one, so B' = A + B - A'."""
    masks = swap_masks(set_name, len(y_true), seed, n_perm)
    x = _indicators(y_true, y_pred, k)
    half = x.shape[1] // 2
    x_a, x_b = x[:, :half], x[:, half:]
    total_a, total_b = x_a.sum(axis=0), x_b.sum(axis=0)
    swapped_a = total_a + masks @ (x_b - x_a)
    swapped_b = total_a + total_b - swapped_a
    support = np.broadcast_to((y_true[:, None] == np.arange(k)).sum(axis=0), (n_perm, k))
    sa, sb = _scores(swapped_a, support, k), _scores(swapped_b, support, k)
    return {name: sb[name][:, 0] - sa[name][:, 0] for name in METRICS}


# --------------------------------------------------------------------------- tests


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided p of a paired bootstrap's differences: twice the smaller share of draws on
    either side of 0 (ties count on both), with the +1 correction; at most 1."""
    b = diffs.size
    low = (np.count_nonzero(diffs <= 0) + 1) / (b + 1)
    high = (np.count_nonzero(diffs >= 0) + 1) / (b + 1)
    return float(min(1.0, 2 * min(low, high)))


def permutation_p(observed: float, shuffled: np.ndarray) -> float:
    """Two-sided p of an approximate-randomization test (the +1 correction included)."""
    # a tolerance: a shuffle that reproduces the observed difference must count as one
    hits = np.count_nonzero(np.abs(shuffled) >= abs(observed) - 1e-9)
    return float((hits + 1) / (shuffled.size + 1))


def _ci(diffs: np.ndarray) -> list[float]:
    tail = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return [round(float(lo), 2), round(float(hi), 2)]


@dataclass
class _Paired:
    """One set's (or the mean's) raw material: point values, bootstrap replicates and
    shuffled differences, metric -> arrays."""

    a: dict[str, float]
    b: dict[str, float]
    boot_a: dict[str, np.ndarray]
    boot_b: dict[str, np.ndarray]
    shuffled: dict[str, np.ndarray]

    def to_json(self) -> dict:
        out = {}
        for name in METRICS:
            diff = self.b[name] - self.a[name]
            entry = {"a": round(self.a[name], 2), "b": round(self.b[name], 2),
                     "diff": round(diff, 2), "ci": None, "p_bootstrap": None,
                     "p_permutation": None}
            if self.boot_a[name].size:
                draws = self.boot_b[name] - self.boot_a[name]
                entry.update(ci=_ci(draws), p_bootstrap=round(bootstrap_p(draws), 4))
            if self.shuffled[name].size:
                entry["p_permutation"] = round(permutation_p(diff, self.shuffled[name]), 4)
            out[name] = entry
        return out


def _paired_set(set_name: str, gold: Sequence[str], pred_a: Sequence[str | None],
                pred_b: Sequence[str | None], seed: int, n_boot: int, n_perm: int) -> _Paired:
    y_true, y_pred, k = encode_runs(gold, [pred_a, pred_b])
    point = point_scores(y_true, y_pred, k)
    empty = {name: np.empty(0) for name in METRICS}
    boot_a = boot_b = shuffled = empty
    if n_boot > 0:
        reps = scores_under(bootstrap_weights(set_name, len(gold), seed, n_boot), y_true,
                            y_pred, k)
        boot_a = {name: reps[name][0] for name in METRICS}
        boot_b = {name: reps[name][1] for name in METRICS}
    if n_perm > 0:
        shuffled = _permuted_diffs(set_name, y_true, y_pred, k, seed, n_perm)
    return _Paired({n: float(point[n][0]) for n in METRICS},
                   {n: float(point[n][1]) for n in METRICS}, boot_a, boot_b, shuffled)


def _mean_of(parts: Sequence[_Paired]) -> _Paired:
    def avg(field: str) -> dict:
        return {name: np.mean([getattr(p, field)[name] for p in parts], axis=0)
                for name in METRICS}

    a, b = avg("a"), avg("b")
    return _Paired({n: float(v) for n, v in a.items()}, {n: float(v) for n, v in b.items()},
                   avg("boot_a"), avg("boot_b"), avg("shuffled"))


# --------------------------------------------------------------------------- runs


def protocol_of(provenance: Mapping | None) -> dict:
    """The protocol a run's provenance names ({"id": hex, "name": ..., ...}), {} if none."""
    proto = (provenance or {}).get("protocol")
    return proto if isinstance(proto, dict) else {}


def protocol_text(provenance: Mapping | None) -> str:
    proto = protocol_of(provenance)
    if not proto.get("id"):
        return "protocol unknown"
    name = proto.get("name")
    return f"protocol {name} ({proto['id']})" if name else f"protocol {proto['id']}"


def protocols_differ(a: Mapping | None, b: Mapping | None) -> bool:
    """Both provenances name a protocol, and not the same one."""
    pa, pb = protocol_of(a).get("id"), protocol_of(b).get("id")
    return bool(pa and pb and pa != pb)


def protocol_note(a: Mapping | None, b: Mapping | None) -> str:
    """One line on whether runs A and B (their provenances) were run under one protocol."""
    pa, pb = protocol_of(a).get("id"), protocol_of(b).get("id")
    if pa and pa == pb:
        if protocol_of(a).get("decoding") == "unknown":  # core.protocol.UNKNOWN
            return (f"Same {protocol_text(a)}, as far as recorded: how the generations were "
                    "made (prompt, decoding) is not, and may differ.")
        return f"Same {protocol_text(a)}."
    if pa and pb:
        return (f"Different protocols, compared anyway: A {protocol_text(a)}, "
                f"B {protocol_text(b)}.")
    unknown = " and ".join(n for n, p in (("A", pa), ("B", pb)) if not p)
    return (f"{unknown}: protocol unknown (no protocol in the provenance); the runs may "
            "differ in prompt, format or decoding.")


def shared_samples(set_name: str, a: Labels, b: Labels) -> tuple[list[str], list, list]:
    """(gold, A's labels, B's labels) over the doc ids both runs scored, in doc id order.
    The same doc id with another gold label means another data file: an ImhiError."""
    ids = sorted(set(a) & set(b))
    gold = [a[i][0] for i in ids]
    differ = sum(1 for i, g in zip(ids, gold, strict=True) if b[i][0] != g)
    if differ:
        raise ImhiError(f"{set_name}: {differ} of the {len(ids)} doc ids both runs scored have "
                        "different gold labels: the runs read different data files; compare "
                        "runs of the same release and format")
    return gold, [a[i][1] for i in ids], [b[i][1] for i in ids]


def compare_runs(
    a: Mapping[str, Labels],
    b: Mapping[str, Labels],
    *,
    seed: int = 0,
    n_boot: int = N_BOOTSTRAP,
    n_perm: int = N_PERMUTATIONS,
) -> dict:
    """The paired comparison of two runs (set -> doc id -> (gold label, label read)), as
    JSON: per shared set its shared sample count and, per metric, A, B, diff (B - A), ci,
    p_bootstrap, p_permutation (None where disabled); the same for the mean over the
    shared sets; the sets only one run scored.  Sets in SET_NAMES order."""
    rank = {name: i for i, name in enumerate(SET_NAMES)}
    order = sorted(set(a) | set(b), key=lambda name: (rank.get(name, len(rank)), name))
    sets, parts = {}, []
    for name in order:
        if name not in a or name not in b:
            continue
        gold, pred_a, pred_b = shared_samples(name, a[name], b[name])
        if not gold:
            continue
        part = _paired_set(name, gold, pred_a, pred_b, seed, n_boot, n_perm)
        parts.append(part)
        sets[name] = {"n": len(gold), "only_a": len(a[name]) - len(gold),
                      "only_b": len(b[name]) - len(gold), **part.to_json()}
    if not sets:
        raise ImhiError("the two runs share no scored sample (no set with the same doc ids): "
                        "compare runs of the same sets")
    mean = {"sets": list(sets), **_mean_of(parts).to_json()}
    return {
        "direction": "B - A",
        "sets": sets,
        "mean": mean,
        "only_in_a": [s for s in order if s in a and s not in sets],
        "only_in_b": [s for s in order if s in b and s not in sets],
        "seed": seed,
        "bootstrap": n_boot,
        "permutations": n_perm,
        "ci_level": CI_LEVEL,
    }
