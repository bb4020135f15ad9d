"""Explicit answers first: where the rules find an answer the response states as such (an
answer slot, "Yes." / "Label: work" / the head before "Reasoning:", or an option chosen from
a list the response wrote, "Correct answer: B"), that answer decides; the classifier reads
the other responses.

Why: the classifier is trained on gold-style responses only, so shapes it never saw (an
option list naming every class, then "Answer: (C)") are read from the words of the list; the
rules resolve the choice through the list the response wrote.  Free text without an explicit
answer is where the classifier earns its place, so it keeps those.  Works with any labeler
that has `.predict(set, texts) -> list[class]`, which only ever sees the undecided texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imhi_bench.benchmark.sets import get_set
from imhi_bench.scoring.labels.reader import explicit_label

RULES = "rules"
CLASSIFIER = "classifier"


@dataclass(frozen=True)
class Reading:
    """One label per text and which reader decided it."""

    labels: list[str | None]
    by_rules: list[bool]  # True where the rules' explicit answer decided

    @property
    def rules_decided(self) -> int:
        return sum(self.by_rules)

    @property
    def classifier_decided(self) -> int:
        return len(self.labels) - self.rules_decided

    def source(self, i: int) -> str:
        """'rules' or 'classifier': who decided label `i` (per-sample provenance)."""
        return RULES if self.by_rules[i] else CLASSIFIER


def read_labels(labeler, set_name: str, texts: Sequence[str | None]) -> Reading:
    """Labels of `texts` for `set_name`: the rules' explicit answer where there is one, the
    labeler's prediction otherwise (one `predict` call, on the undecided texts only)."""
    set_name = get_set(set_name).name
    clean = [t if isinstance(t, str) else "" for t in texts]
    explicit = [explicit_label(set_name, t) for t in clean]
    rest = [i for i, found in enumerate(explicit) if found is None]
    predicted = list(labeler.predict(set_name, [clean[i] for i in rest])) if rest else []
    labels: list[str | None] = list(explicit)
    for i, label in zip(rest, predicted, strict=True):
        labels[i] = label
    return Reading(labels, [found is not None for found in explicit])
