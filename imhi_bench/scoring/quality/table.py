"""The one table of explanation-quality metrics.

Every reader of quality metrics (the score pipeline, the report, the store, the
leaderboard, the CLI) takes names, keys, columns and titles from `METRICS`.  Adding a metric
is one entry here plus one module holding its function.

Nothing here imports torch or a metric's library: functions are named as
"module:function" and imported on first use, so the CLI can list the metrics and show
their defaults without loading a model stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.lazy import resolve

# Defaults read by the metric modules, the config and the CLI help alike.
DEFAULT_BART_MODEL = "facebook/bart-large-cnn"  # the paper's BART-score model
DEFAULT_BERTSCORE_MODEL = "roberta-large"  # bert-score's own default for English (layer 17)
DEFAULT_BATCH_SIZE = 16  # average-length pairs per BART-score batch


class QualityOptions(Protocol):
    """What a metric function may read of the run's quality settings (`QualityConfig`
    has these fields); a metric reads only its own."""

    bart_model: str
    bart_checkpoint: str | None
    bertscore_model: str | None
    bertscore_layers: int | None
    batch_size: int
    device: str | None
    progress: bool


# (generations, golds, options) -> one value per sample, in order.
MetricFunction = Callable[[Sequence[str], Sequence[str], QualityOptions], list[float]]


@dataclass(frozen=True)
class QualityMetric:
    name: str  # CLI name, as --quality takes it
    key: str  # score JSON key (per-set mean; per-sample values use it too)
    column: str  # results-store column
    label: str  # column title in the report and the leaderboard
    scale: str  # what a value means
    higher_is_better: bool
    # "module:function" computing per-sample values (a `MetricFunction`); None for a
    # metric produced elsewhere, which --quality cannot select.
    function: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def selectable(self) -> bool:
        return self.function is not None

    def load(self) -> MetricFunction:
        """The metric's function, imported now (this is where torch may load)."""
        if self.function is None:
            raise ImhiError(f"{self.name} is not computed from text pairs: it has no function")
        return resolve(self.function)


_PKG = "imhi_bench.scoring.quality"

# In report order.
METRICS: tuple[QualityMetric, ...] = (
    QualityMetric(
        name="bart", key="bart_score", column="bart_score", label="BARTScore",
        scale="mean log-likelihood per token of the gold response given the generation "
              "(<= 0; the paper's BART-score)",
        higher_is_better=True, function=f"{_PKG}.bart_score:per_sample",
        aliases=("bartscore",),
    ),
    QualityMetric(
        name="bertscore", key="bertscore_f1", column="bertscore_f1", label="BERTScore",
        scale="F1 of matched contextual token embeddings, generation vs gold (0-1)",
        higher_is_better=True, function=f"{_PKG}.bertscore:per_sample",
        aliases=("bert",),
    ),
    QualityMetric(
        name="rouge", key="rougeL", column="rouge_l", label="ROUGE-L",
        scale="F-measure of the longest common subsequence, stemmed, generation vs gold (0-1)",
        higher_is_better=True, function=f"{_PKG}.rouge:per_sample",
        aliases=("rouge-l",),
    ),
    # Produced by the classifier labeler (--labeler), not by --quality.
    QualityMetric(
        name="consistency", key="consistency", column="consistency", label="consist.",
        scale="share of samples whose rule label equals the classifier's label (0-1)",
        higher_is_better=True,
    ),
)

# What --quality can select, by CLI name, in report order.
QUALITY_METRICS: dict[str, QualityMetric] = {m.name: m for m in METRICS if m.selectable}

_BY_NAME: dict[str, QualityMetric] = {
    alias.lower(): m for m in METRICS for alias in (m.name, m.key, *m.aliases)
}


def metric(name: str) -> QualityMetric:
    """The entry of a CLI name, score JSON key or alias (any case)."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        raise ImhiError(f"unknown quality metric {name!r}: use any of "
                        f"{','.join(m.name for m in METRICS)}") from None


def parse_quality_metrics(text: str | None) -> list[str]:
    """'bart,bertscore,rouge' -> ['bart', 'bertscore', 'rouge'] ('all' = every metric
    --quality can select).  Names, JSON keys and aliases are accepted, in any case."""
    if text is None or not text.strip():
        return []
    if text.strip().lower() == "all":
        return list(QUALITY_METRICS)
    out: list[str] = []
    for part in text.split(","):
        key = part.strip().lower()
        if not key:
            continue
        if key not in _BY_NAME or not _BY_NAME[key].selectable:
            raise ImhiError(
                f"unknown quality metric {part.strip()!r}: use any of "
                f"{','.join(QUALITY_METRICS)} (or 'all')"
            )
        if _BY_NAME[key].name not in out:
            out.append(_BY_NAME[key].name)
    return out
