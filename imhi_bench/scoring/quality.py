"""Explanation quality: BART-score, BERTScore, ROUGE-L, and label/explanation consistency.

Direction everywhere: the generation is scored against the gold response, as MentaLLaMA's
`score.py` does for BART-score (source = generation, target = gold).  BERTScore takes the
generation as candidate and the gold as reference (F1 is symmetric anyway); ROUGE-L is the
`rouge-score` F-measure with Porter stemming (prediction = generation, target = gold).

`compute_quality` is the single entry point (per-sample lists); `add_quality_args` and
`quality_from_args` are what `score`/`eval` call to expose and build it.  Loaded models are
cached, so scoring ten sets loads each model once.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line

# CLI name -> score JSON key, in report order.
QUALITY_METRICS: dict[str, str] = {
    "bart": "bart_score",
    "bertscore": "bertscore_f1",
    "rouge": "rougeL",
}
_ALIASES = {
    **{name: name for name in QUALITY_METRICS},
    **{key.lower(): name for name, key in QUALITY_METRICS.items()},
    "bartscore": "bart", "bert": "bertscore", "rouge-l": "rouge", "rougel": "rouge",
}
# bert-score's own default for English (roberta-large, layer 17).
# Defaults live here, not in bart_score.py, so that the CLI can show them without
# importing torch.
DEFAULT_BART_MODEL = "facebook/bart-large-cnn"
DEFAULT_BATCH_SIZE = 16
DEFAULT_BERTSCORE_MODEL = "roberta-large"


def parse_quality_metrics(text: str | None) -> list[str]:
    """'bart,bertscore,rouge' -> ['bart', 'bertscore', 'rouge'] ('all' = every metric)."""
    if text is None or not text.strip():
        return []
    if text.strip().lower() == "all":
        return list(QUALITY_METRICS)
    out: list[str] = []
    for part in text.split(","):
        key = part.strip().lower()
        if not key:
            continue
        if key not in _ALIASES:
            raise ImhiError(
                f"unknown quality metric {part.strip()!r}: use any of "
                f"{','.join(QUALITY_METRICS)} (or 'all')"
            )
        if _ALIASES[key] not in out:
            out.append(_ALIASES[key])
    return out


# --------------------------------------------------------------------------------------
# BERTScore and ROUGE-L
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _bertscorer(model: str, layers: int | None, device: str | None, batch_size: int):
    import bert_score
    from bert_score.utils import model2layers

    if layers is None and model not in model2layers:
        # bert-score only knows layer choices for models it has tuned; else use the last.
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(model)
        except (OSError, ValueError):
            raise ImhiError(
                f"cannot load BERTScore model {model!r}: pass --bertscore-model with a local "
                "folder or a Hugging Face id you can download"
            ) from None
        layers = getattr(config, "num_hidden_layers", None)
        if layers is None:
            raise ImhiError(f"cannot tell how many layers {model!r} has: pass --bertscore-layers")
    try:
        return bert_score.BERTScorer(model_type=model, num_layers=layers, device=device,
                                     batch_size=batch_size)
    except (OSError, ValueError) as e:
        first = first_line(e)
        raise ImhiError(f"cannot load BERTScore model {model!r} ({first})") from None
    except AssertionError as e:  # bert-score asserts a valid layer count
        raise ImhiError(f"--bertscore-layers {layers} is invalid for {model!r} ({e})") from None


def bertscore_f1(
    candidates: Sequence[str],
    references: Sequence[str],
    *,
    model: str | None = None,
    layers: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
) -> list[float]:
    """BERTScore F1 of each candidate against its reference (no idf, no baseline rescale)."""
    if len(candidates) != len(references):
        raise ImhiError(
            f"BERTScore needs as many candidates as references "
            f"({len(candidates)} vs {len(references)})"
        )
    if not candidates:
        return []
    scorer = _bertscorer(model or DEFAULT_BERTSCORE_MODEL, layers, device, batch_size)
    # An empty text scores 0, as bert-score itself defines it; it is kept out of the call
    # because bert-score's empty-text path uses a tokenizer method transformers 5 dropped.
    keep = [i for i, (c, r) in enumerate(zip(candidates, references))
            if (c or "").strip() and (r or "").strip()]
    out = [0.0] * len(candidates)
    if keep:
        # bert-score sorts by length and deduplicates internally; verbose = its tqdm bar.
        _, _, f1 = scorer.score([candidates[i] for i in keep], [references[i] for i in keep],
                                verbose=progress, batch_size=batch_size)
        for i, value in zip(keep, f1.tolist(), strict=True):
            out[i] = float(value)
    return out


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


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------

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
    if len(generations) != len(golds):
        raise ImhiError(
            f"quality scoring needs one gold per generation ({len(generations)} vs {len(golds)})"
        )
    names = parse_quality_metrics(",".join(metrics))
    gens = [g if isinstance(g, str) else "" for g in generations]
    refs = [g if isinstance(g, str) else "" for g in golds]
    out: dict[str, list[float]] = {}
    for name in names:
        if name == "bart":
            from imhi_bench.scoring.bart_score import bart_scores

            out["bart_score"] = bart_scores(gens, refs, model=bart_model,
                                            checkpoint=bart_checkpoint, batch_size=batch_size,
                                            device=device, progress=progress)
        elif name == "bertscore":
            out["bertscore_f1"] = bertscore_f1(gens, refs, model=bertscore_model,
                                               layers=bertscore_layers, device=device,
                                               progress=progress)
        elif name == "rouge":
            out["rougeL"] = rouge_l(gens, refs)
    return out


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def consistency(
    rule_labels: Sequence[str | None], classifier_labels: Sequence[str | None]
) -> float:
    """The paper's check: share of samples whose rule label (read from the response) equals
    the classifier's label of its explanation.  An unreadable label (None) never agrees;
    NaN for no samples."""
    if len(rule_labels) != len(classifier_labels):
        raise ImhiError(
            f"consistency needs one classifier label per rule label "
            f"({len(rule_labels)} vs {len(classifier_labels)})"
        )
    if not rule_labels:
        return math.nan
    agree = sum(r is not None and r == c for r, c in zip(rule_labels, classifier_labels))
    return agree / len(rule_labels)


# --------------------------------------------------------------------------------------
# CLI wiring for `score` / `eval`
# --------------------------------------------------------------------------------------

def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--bart-model, --bart-checkpoint, --bertscore-model, --bertscore-layers."""
    parser.add_argument("--bart-model", default=DEFAULT_BART_MODEL, metavar="PATH_OR_ID",
                        help=f"BART for BART-score (default {DEFAULT_BART_MODEL})")
    parser.add_argument("--bart-checkpoint", metavar="FILE",
                        help="state dict loaded into the BART model, e.g. BARTScore's ParaBank "
                        "bart_score.pth (loaded with weights_only=True)")
    parser.add_argument("--bertscore-model", metavar="PATH_OR_ID",
                        help=f"model for BERTScore (default bert-score's English default, "
                        f"{DEFAULT_BERTSCORE_MODEL})")
    parser.add_argument("--bertscore-layers", type=int, metavar="N",
                        help="BERTScore layer (default: bert-score's choice for known models, "
                        "else the last layer)")


def add_quality_args(parser: argparse.ArgumentParser) -> None:
    """--quality, the model options, and --labeler."""
    parser.add_argument("--quality", metavar="LIST",
                        help="explanation quality metrics against the gold response: any of "
                        f"{','.join(QUALITY_METRICS)} (or 'all')")
    add_model_args(parser)
    parser.add_argument("--labeler", metavar="DIR",
                        help="per-set classifier folders (from `imhi-bench labeler train` or "
                        "the paper's released classifiers): they read the labels of the sets "
                        "they cover (rules for the rest) and give the consistency check")


@dataclass
class SetQuality:
    """Quality of one set: per-sample values and the means that go in the score JSON."""

    per_sample: dict[str, list[float]]
    classifier_labels: list[str] | None = None  # the labeler's label of each explanation
    consistency: float | None = None

    def to_json(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {k: mean(v) for k, v in self.per_sample.items()}
        if self.consistency is not None:
            out["consistency"] = None if math.isnan(self.consistency) else self.consistency
        return out


@dataclass
class QualityConfig:
    """What `--quality ... --labeler ...` asked for; models load on first use."""

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
            from imhi_bench.scoring.labeler import load_labeler

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
        return compute_quality(
            self.metrics, generations, golds, bart_model=self.bart_model,
            bart_checkpoint=self.bart_checkpoint, bertscore_model=self.bertscore_model,
            bertscore_layers=self.bertscore_layers, batch_size=self.batch_size,
            device=self.device, progress=self.progress,
        )

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
        from imhi_bench.scoring.labels import explanation, extract_label

        set_name = get_set(set_name).name
        result = SetQuality(self.per_sample(generations, golds))
        lab = self.labeler
        if lab is not None and set_name in lab.sets:
            gens = [g if isinstance(g, str) else "" for g in generations]
            if rule_labels is None:
                rule_labels = [extract_label(set_name, g) for g in gens]
            result.classifier_labels = lab.predict(set_name, [explanation(g) for g in gens])
            result.consistency = consistency(rule_labels, result.classifier_labels)
        return result


def quality_from_args(args: argparse.Namespace) -> QualityConfig | None:
    """The config `add_quality_args` options describe; None when neither --quality nor
    --labeler was given.  Validates the options now so a typo fails before any work."""
    metrics = parse_quality_metrics(getattr(args, "quality", None))
    labeler_dir = getattr(args, "labeler", None)
    if not metrics and not labeler_dir:
        return None
    layers = getattr(args, "bertscore_layers", None)
    if layers is not None and layers < 0:
        raise ImhiError(f"--bertscore-layers must be 0 or more, got {layers}")
    checkpoint = getattr(args, "bart_checkpoint", None)
    if checkpoint and "bart" not in metrics:
        raise ImhiError("--bart-checkpoint is for BART-score: add bart to --quality")
    if checkpoint and not Path(checkpoint).is_file():
        raise ImhiError(f"--bart-checkpoint {checkpoint} does not exist")
    if labeler_dir:
        from imhi_bench.scoring.labeler import find_classifiers

        find_classifiers(labeler_dir)  # fails now, not after generation, on a bad folder
    return QualityConfig(
        metrics=metrics,
        bart_model=getattr(args, "bart_model", None) or DEFAULT_BART_MODEL,
        bart_checkpoint=checkpoint,
        bertscore_model=getattr(args, "bertscore_model", None),
        bertscore_layers=layers,
        labeler_dir=labeler_dir,
    )
