"""Meta-evaluation: how well each quality metric tracks human ratings of explanations.

Data: the paper's DR annotations, `human_evaluation/DR_annotation/*.csv` (columns text,
label, <model column>, fluency, completeness, reliability, overall).  Each aspect cell holds
three annotators' ratings, e.g. "[3, 2, 3]"; the human score of a sample is their mean.

Scoring is reference-free (there is no gold explanation for these responses): each
explanation is scored *given its post*.
* BART-score: source = the post, target = the explanation, i.e. the mean log-likelihood of
  the explanation given the post (BARTScore's faithfulness direction, s -> h);
* BERTScore F1: candidate = the explanation, reference = the post;
* ROUGE-L F-measure: prediction = the explanation, target = the post.
The explanation is `labels.explanation(response)`: the response without a leading label
sentence split off by a "Reasoning:"-style marker (these responses rarely have one, so it
is mostly the whole response, as the annotators saw it).

Pearson, Spearman and Kendall (tau-b) come from scipy, per file and over all files pooled.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from imhi_bench.core.errors import ImhiError

ANNOTATION_DIR = "human_evaluation/DR_annotation"
ASPECTS: tuple[str, ...] = ("fluency", "completeness", "reliability", "overall")
POST_COLUMN = "text"
_FIXED = {POST_COLUMN, "label", *ASPECTS}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
DIRECTION = (
    "reference-free: BART-score source = post, target = explanation; BERTScore candidate = "
    "explanation, reference = post; ROUGE-L prediction = explanation, target = post"
)


@dataclass(frozen=True)
class Annotated:
    file: str  # file stem, e.g. chatgpt_data
    row: int  # 1-based data row
    model: str  # the response column, e.g. gpt-3.5-turbo
    post: str
    explanation: str
    ratings: dict[str, float]  # aspect -> mean over annotators


def parse_ratings(cell: str, where: str = "") -> float:
    """'[3, 2, 3]' (or a bare number) -> the mean rating."""
    values = [float(x) for x in _NUMBER.findall(cell or "")]
    if not values:
        at = f" at {where}" if where else ""
        raise ImhiError(f"no rating in {cell!r}{at}: expected e.g. [3, 2, 3]")
    return sum(values) / len(values)


def load_annotations(data_dir: str | os.PathLike | None = None) -> list[Annotated]:
    """Every annotated sample of DR_annotation/*.csv, files in name order."""
    from imhi_bench.benchmark.data import read_csv, resolve_data_dir
    from imhi_bench.scoring.labels.reader import explanation

    folder = resolve_data_dir(data_dir) / ANNOTATION_DIR
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise ImhiError(
            f"no annotation files in {folder}: it should hold the paper's DR_annotation/*.csv "
            "(run `imhi-bench data fetch`)"
        )
    out: list[Annotated] = []
    for path in files:
        rows = read_csv(path, (POST_COLUMN, *ASPECTS))
        model_cols = [c for c in rows[0] if c.strip() and c not in _FIXED]
        if len(model_cols) != 1:
            raise ImhiError(
                f"{path} should have exactly one response column besides "
                f"{', '.join(sorted(_FIXED))}; found {model_cols or 'none'}"
            )
        col = model_cols[0]
        for i, r in enumerate(rows, start=1):
            where = f"{path.name} row {i}"
            out.append(Annotated(
                path.stem, i, col, r[POST_COLUMN], explanation(r[col]),
                {a: parse_ratings(r[a], f"{where} column {a}") for a in ASPECTS},
            ))
    return out


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def correlate(metric: Sequence[float], human: Sequence[float]) -> dict[str, float | None]:
    """Pearson, Spearman and Kendall tau-b with p-values; None where undefined (fewer than
    3 samples, or a constant input)."""
    from scipy import stats

    keys = ("pearson", "spearman", "kendall")
    if len(metric) < 3 or len(set(metric)) < 2 or len(set(human)) < 2:
        return {k: None for k in keys} | {f"{k}_p": None for k in keys}
    out: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, fn in zip(keys, (stats.pearsonr, stats.spearmanr, stats.kendalltau)):
            res = fn(metric, human)
            out[key] = _finite(res.statistic)
            out[f"{key}_p"] = _finite(res.pvalue)
    return out


def meta_evaluate(
    metrics: Sequence[str],
    data_dir: str | os.PathLike | None = None,
    *,
    bart_model: str | None = None,
    bart_checkpoint: str | None = None,
    bertscore_model: str | None = None,
    bertscore_layers: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict:
    """Correlation of each metric with each human aspect; the meta-eval JSON."""
    from imhi_bench.benchmark.data import resolve_data_dir
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.scoring.quality.config import compute_quality
    from imhi_bench.scoring.quality.table import (
        DEFAULT_BART_MODEL,
        DEFAULT_BATCH_SIZE,
        QUALITY_METRICS,
        parse_quality_metrics,
    )

    names = parse_quality_metrics(",".join(metrics))
    if not names:
        raise ImhiError(
            f"no metric to evaluate: give --metrics with any of {','.join(QUALITY_METRICS)}")
    samples = load_annotations(data_dir)
    # Quality functions take (generation, gold); here (explanation, post): see module doc.
    scores = compute_quality(
        names, [s.explanation for s in samples], [s.post for s in samples],
        bart_model=bart_model or DEFAULT_BART_MODEL, bart_checkpoint=bart_checkpoint,
        bertscore_model=bertscore_model, bertscore_layers=bertscore_layers,
        batch_size=batch_size or DEFAULT_BATCH_SIZE, progress=progress,
    )
    groups: dict[str, list[int]] = {"all": list(range(len(samples)))}
    for i, s in enumerate(samples):
        groups.setdefault(s.file, []).append(i)
    correlations = {
        group: {
            key: {
                aspect: correlate([values[i] for i in idx],
                                  [samples[i].ratings[aspect] for i in idx])
                for aspect in ASPECTS
            }
            for key, values in scores.items()
        }
        for group, idx in groups.items()
    }
    return {
        "data": str(resolve_data_dir(data_dir) / ANNOTATION_DIR),
        "files": {g: {"n": len(idx), "model": samples[idx[0]].model if g != "all" else None}
                  for g, idx in groups.items()},
        "direction": DIRECTION,
        "models": {
            **({"bart": bart_model or DEFAULT_BART_MODEL,
                "bart_checkpoint": bart_checkpoint} if "bart" in names else {}),
            **({"bertscore": bertscore_model or "bert-score default (roberta-large)",
                "bertscore_layers": bertscore_layers} if "bertscore" in names else {}),
        },
        "metric_means": {k: math.fsum(v) / len(v) for k, v in scores.items()},
        "correlations": correlations,
        "notice": NON_CLINICAL_NOTICE,
    }


def _r(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def format_meta_eval(result: dict, group: str = "all") -> str:
    """The correlation table of one group (default: all files pooled), then the notice."""
    from imhi_bench.scoring.report import table

    corr = result["correlations"][group]
    rows = [
        [metric, aspect, _r(c["pearson"]), _r(c["spearman"]), _r(c["kendall"])]
        for metric, by_aspect in corr.items()
        for aspect, c in by_aspect.items()
    ]
    files = result["files"]
    n = files[group]["n"]
    title = (f"DR_annotation, {'all files' if group == 'all' else group} (n={n}): "
             "correlation of each metric with the mean human rating")
    per_file = ", ".join(f"{g} n={f['n']} ({f['model']})" for g, f in files.items() if g != "all")
    return "\n".join([
        title,
        f"files: {per_file}",
        f"direction: {result['direction']}",
        "",
        table(["metric", "aspect", "pearson", "spearman", "kendall"], rows),
        "",
        result["notice"],
    ])
