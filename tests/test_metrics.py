"""Weighted F1 and friends against scikit-learn; the bootstrap CI and the mean."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from imhi_bench.scoring.metrics import (
    bootstrap_weighted_f1,
    mean_over_sets,
    score_set,
    weighted_f1_rows,
)
from imhi_bench.scoring.resample import set_seed


def test_perfect_predictions_score_100():
    gold = ["yes", "no", "yes", "yes"]
    m = score_set(gold, gold)
    assert (m.weighted_f1, m.accuracy, m.macro_f1, m.unparseable, m.n) == (100, 100, 100, 0, 4)
    assert m.weighted_f1_ci == (100.0, 100.0)


def test_unparseable_counts_as_wrong_not_as_a_class():
    gold = ["yes", "yes", "no", "no"]
    pred = ["yes", None, "no", "no"]
    m = score_set(gold, pred, n_boot=0)
    assert m.unparseable == 1
    assert m.accuracy == 75.0
    # None is a miss for 'yes' and a hit for nothing: same as predicting a non-gold class
    expected = f1_score(gold, ["yes", "__x__", "no", "no"], labels=["no", "yes"],
                        average="weighted", zero_division=0)
    assert m.weighted_f1 == round(expected * 100, 2)
    assert m.weighted_f1_ci is None


def test_matches_sklearn_on_random_multiclass():
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d"]
    gold = list(rng.choice(classes[:3], size=300))  # 'd' is predicted but never gold
    pred = [c if rng.random() < 0.6 else rng.choice(classes + [None]) for c in gold]
    m = score_set(gold, pred, n_boot=0)
    filled = ["<none>" if p is None else p for p in pred]
    labels = sorted(set(gold))
    for avg, got in (("weighted", m.weighted_f1), ("macro", m.macro_f1)):
        ref = f1_score(gold, filled, labels=labels, average=avg, zero_division=0) * 100
        assert got == round(ref, 2)


def test_vectorised_rows_equal_sklearn_per_row():
    rng = np.random.default_rng(2)
    k = 5
    y_true = rng.integers(0, k, size=(20, 97))
    y_pred = rng.integers(0, k + 1, size=(20, 97))  # k = unparseable
    got = weighted_f1_rows(y_true, y_pred, k)
    for row in range(20):
        ref = f1_score(y_true[row], y_pred[row], labels=list(range(k)), average="weighted",
                       zero_division=0)
        assert got[row] == pytest.approx(ref, abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_point():
    rng = np.random.default_rng(3)
    gold = list(rng.choice(["x", "y", "z"], size=400))
    pred = [g if rng.random() < 0.7 else "x" for g in gold]
    a = score_set(gold, pred, seed=5)
    b = score_set(gold, pred, seed=5)
    c = score_set(gold, pred, seed=6)
    assert a.weighted_f1_ci == b.weighted_f1_ci
    assert np.array_equal(a.replicates, b.replicates)
    assert not np.array_equal(a.replicates, c.replicates)
    lo, hi = a.weighted_f1_ci
    assert lo < a.weighted_f1 < hi
    assert 2 < hi - lo < 20


def test_bootstrap_shape_and_determinism():
    y = np.array([0, 1, 1, 0, 1])
    r1 = bootstrap_weighted_f1(y, y, 2, n_boot=50, seed=0)
    assert r1.shape == (50,) and np.allclose(r1, 100.0)


def test_mean_over_sets_averages_sets_unweighted():
    a = score_set(["yes"] * 10, ["yes"] * 10, seed=1)
    b = score_set(["no", "yes"] * 50, ["no"] * 100, seed=2)
    mean = mean_over_sets({"DR": a, "dreaddit": b})
    assert mean["weighted_f1"] == round((a.weighted_f1 + b.weighted_f1) / 2, 2)
    assert mean["n"] == 110 and mean["sets"] == 2
    lo, hi = mean["weighted_f1_ci"]
    assert lo <= mean["weighted_f1"] <= hi


def test_set_seed_is_stable_and_distinct():
    assert set_seed("DR", 0) == set_seed("DR", 0)
    assert set_seed("DR", 0) != set_seed("SAD", 0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        score_set(["yes"], ["yes", "no"])
