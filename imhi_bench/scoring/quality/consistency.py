"""Label/explanation consistency, the paper's check with its classifier labeler."""

from __future__ import annotations

import math
from collections.abc import Sequence

from imhi_bench.core.errors import ImhiError


def consistency(
    rule_labels: Sequence[str | None], classifier_labels: Sequence[str | None]
) -> float:
    """Share of samples whose rule label (read from the response) equals the classifier's
    label of its explanation.  An unreadable label (None) never agrees; NaN for no samples."""
    if len(rule_labels) != len(classifier_labels):
        raise ImhiError(
            f"consistency needs one classifier label per rule label "
            f"({len(rule_labels)} vs {len(classifier_labels)})"
        )
    if not rule_labels:
        return math.nan
    agree = sum(r is not None and r == c for r, c in zip(rule_labels, classifier_labels))
    return agree / len(rule_labels)


def explanation_labels(labeler, set_name: str, generations: Sequence[str | None]):
    """The classifier side of consistency: each generation's explanation (its label sentence
    split off) read as the labeler reads everything, an explicit answer still in it (a
    chosen option, an answer slot with no "Reasoning:" marker) by the rules and the rest by
    the classifier.  A `labeler.explicit.Reading`, so the report can say how many each read."""
    from imhi_bench.scoring.labeler.explicit import read_labels
    from imhi_bench.scoring.labels.reader import explanation

    texts = [explanation(g) if isinstance(g, str) else "" for g in generations]
    return read_labels(labeler, set_name, texts)
