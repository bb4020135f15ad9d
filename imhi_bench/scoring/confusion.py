"""Where a model errs on a set: the confusion matrix of gold classes against the labels
read, and each class's F1 with its support.  The score JSON holds both per set
(`pipeline.score_samples`), and the leaderboard's model page shows them (computed by the
same function from the stored samples).

    "per_class": {"yes": {"f1": 85.1, "precision": 80.0, "recall": 90.9, "support": 11},
                  ...},                                 # percent; one entry per set class
    "confusion": {"gold": ["no", "yes"],                # rows: the set's classes
                  "read": ["no", "yes", "unreadable"],  # columns: the labels as read
                  "counts": [[30, 4, 1], [2, 9, 0]]}    # counts[row][column]

Rows and columns list the set's classes in their released order; a label read that is no
class of the set (none of the built-in readers gives one) gets a column of its own after
them, and answers no label could be read from are the last column, "unreadable".
Per-class F1 is over the set's classes as scikit-learn's f1_score(average=None) gives it;
a class without support or predictions has 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from imhi_bench.benchmark.sets import get_set

UNREADABLE = "unreadable"  # the column of answers no label was read from


def _pct(num: int, den: int) -> float:
    return round(100.0 * num / den, 2) if den else 0.0


def error_profile(set_name: str, gold: Sequence[str], pred: Sequence[str | None]) -> dict:
    """{"per_class": ..., "confusion": ...} of one set (see the module docstring)."""
    classes = list(get_set(set_name).classes)
    rows = classes + sorted(set(gold) - set(classes))
    others = sorted({p for p in pred if p is not None} - set(rows))
    read = rows + others + [UNREADABLE]
    cells = Counter(zip(gold, (UNREADABLE if p is None else p for p in pred), strict=True))
    counts = [[cells[(g, r)] for r in read] for g in rows]
    predicted = Counter(p for p in pred if p is not None)
    support = Counter(gold)
    per_class = {}
    for c in classes:
        tp = cells[(c, c)]
        per_class[c] = {
            "f1": _pct(2 * tp, support[c] + predicted[c]),
            "precision": _pct(tp, predicted[c]),
            "recall": _pct(tp, support[c]),
            "support": support[c],
        }
    return {"per_class": per_class,
            "confusion": {"gold": rows, "read": read, "counts": counts}}
