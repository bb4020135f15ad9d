"""ROUGE-L through `rouge-score`: the F-measure with Porter stemming, prediction = the
generation, target = the gold response."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.quality.table import QualityOptions


@functools.lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(predictions: Sequence[str], targets: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its target."""
    if len(predictions) != len(targets):
        raise ImhiError(
            f"ROUGE-L needs as many predictions as targets ({len(predictions)} vs {len(targets)})"
        )
    scorer = _rouge()
    return [scorer.score(t, p)["rougeL"].fmeasure for p, t in zip(predictions, targets)]


def per_sample(generations: Sequence[str], golds: Sequence[str],
               options: QualityOptions) -> list[float]:
    """The table's function: ROUGE-L of each generation against its gold (no options)."""
    return rouge_l(generations, golds)
