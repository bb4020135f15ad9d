"""What `--quality ... --labeler ...` asks for, and computing it per set.

Direction everywhere: the generation is scored against the gold response, as MentaLLaMA's
`score.py` does for BART-score (source = generation, target = gold); each metric's module
says how it reads the pair.  `compute_quality` is the single entry point (per-sample lists);
`quality_config` validates the options before any work.  Loaded models are cached, so
scoring ten sets loads each model once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.quality.consistency import consistency, explanation_labels
from imhi_bench.scoring.quality.table import (
    DEFAULT_BART_MODEL,
    DEFAULT_BATCH_SIZE,
    QUALITY_METRICS,
    metric,
    parse_quality_metrics,
)

CONSISTENCY = metric("consistency").key


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


@dataclass
class SetQuality:
    """Quality of one set: per-sample values and the means that go in the score JSON."""

    per_sample: dict[str, list[float]]
    classifier_labels: list[str] | None = None  # the labeler's label of each explanation
    consistency: float | None = None
    classifier_by_rules: list[bool] | None = None  # where an explicit answer decided it

    def to_json(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {k: mean(v) for k, v in self.per_sample.items()}
        if self.consistency is not None:
            out[CONSISTENCY] = None if math.isnan(self.consistency) else self.consistency
        return out


@dataclass
class QualityConfig:
    """What `--quality ... --labeler ...` asked for; models load on first use.  Its fields
    are the `table.QualityOptions` every metric function reads."""

    metrics: list[str]
    bart_model: str = DEFAULT_BART_MODEL
    bart_checkpoint: str | None = None
    bertscore_model: str | None = None
    bertscore_layers: int | None = None
    labeler_dir: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str | None = None
    progress: bool = True
    _labeler: object = field(default=None, repr=False)

    @property
    def labeler(self):
        """The loaded labeler (`imhi_bench.scoring.labeler.Labeler`), or None without --labeler."""
        if self._labeler is None and self.labeler_dir:
            from imhi_bench.scoring.labeler.load import load_labeler

            self._labeler = load_labeler(self.labeler_dir)
        return self._labeler

    def provenance(self) -> dict:
        """What produced the quality numbers and labels, for a report's provenance."""
        return {
            "metrics": self.metrics,
            "bart_model": self.bart_model if "bart" in self.metrics else None,
            "bart_checkpoint": self.bart_checkpoint,
            "bertscore_model": self.bertscore_model if "bertscore" in self.metrics else None,
            "bertscore_layers": self.bertscore_layers,
            "labeler": self.labeler.name if self.labeler is not None else None,
        }

    def per_sample(
        self, generations: Sequence[str], golds: Sequence[str]
    ) -> dict[str, list[float]]:
        """Score JSON key -> one value per sample, for each metric asked for."""
        if len(generations) != len(golds):
            raise ImhiError(f"quality scoring needs one gold per generation "
                            f"({len(generations)} vs {len(golds)})")
        gens = [g if isinstance(g, str) else "" for g in generations]
        refs = [g if isinstance(g, str) else "" for g in golds]
        return {QUALITY_METRICS[name].key: QUALITY_METRICS[name].load()(gens, refs, self)
                for name in parse_quality_metrics(",".join(self.metrics))}

    def score_set(
        self,
        set_name: str,
        generations: Sequence[str],
        golds: Sequence[str],
        rule_labels: Sequence[str | None] | None = None,
    ) -> SetQuality:
        """Quality metrics of one set, and consistency when the labeler covers the set.

        `rule_labels` are `extract_label` of each generation (computed when not given)."""
        from imhi_bench.benchmark.sets import get_set
        from imhi_bench.scoring.labels.reader import extract_label

        set_name = get_set(set_name).name
        result = SetQuality(self.per_sample(generations, golds))
        lab = self.labeler
        if lab is not None and set_name in lab.sets:
            gens = [g if isinstance(g, str) else "" for g in generations]
            if rule_labels is None:
                rule_labels = [extract_label(set_name, g) for g in gens]
            reading = explanation_labels(lab, set_name, gens)
            result.classifier_labels, result.classifier_by_rules = reading.labels, reading.by_rules
            result.consistency = consistency(rule_labels, result.classifier_labels)
        return result


def compute_quality(
    metrics: Sequence[str],
    generations: Sequence[str],
    golds: Sequence[str],
    *,
    bart_model: str = DEFAULT_BART_MODEL,
    bart_checkpoint: str | None = None,
    bertscore_model: str | None = None,
    bertscore_layers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Per-sample quality scores of generations against gold responses.

    `metrics` are names from `parse_quality_metrics` (or the JSON keys); the result maps the
    JSON key (`bart_score`, `bertscore_f1`, `rougeL`) to one value per sample, in order.
    """
    return QualityConfig(
        metrics=list(metrics), bart_model=bart_model, bart_checkpoint=bart_checkpoint,
        bertscore_model=bertscore_model, bertscore_layers=bertscore_layers,
        batch_size=batch_size, device=device, progress=progress,
    ).per_sample(generations, golds)


def quality_config(
    quality: str | None,
    *,
    bart_model: str | None = None,
    bart_checkpoint: str | None = None,
    bertscore_model: str | None = None,
    bertscore_layers: int | None = None,
    labeler_dir: str | None = None,
) -> QualityConfig | None:
    """The config the `--quality ...` options describe; None when neither metrics nor a
    labeler were asked for.  Validates now, so a typo fails before any work."""
    metrics = parse_quality_metrics(quality)
    if not metrics and not labeler_dir:
        return None
    if bertscore_layers is not None and bertscore_layers < 0:
        raise ImhiError(f"--bertscore-layers must be 0 or more, got {bertscore_layers}")
    if bart_checkpoint and "bart" not in metrics:
        raise ImhiError("--bart-checkpoint is for BART-score: add bart to --quality")
    if bart_checkpoint and not Path(bart_checkpoint).is_file():
        raise ImhiError(f"--bart-checkpoint {bart_checkpoint} does not exist")
    if "bart" in metrics:  # before any model loads or generates
        from imhi_bench.scoring.quality.bart_model import check_bart_model

        check_bart_model(bart_model or DEFAULT_BART_MODEL)
    if labeler_dir:
        from imhi_bench.scoring.labeler.load import find_classifiers

        find_classifiers(labeler_dir)  # fails now, not after generation, on a bad folder
    return QualityConfig(
        metrics=metrics,
        bart_model=bart_model or DEFAULT_BART_MODEL,
        bart_checkpoint=bart_checkpoint,
        bertscore_model=bertscore_model,
        bertscore_layers=bertscore_layers,
        labeler_dir=labeler_dir,
    )
