"""From generations to the score JSON: label each sample, compute metrics per set and the
mean.  `imhi-bench score` and `imhi-bench eval` both end here, so both write one schema:

    {"sets": {"DR": {"weighted_f1", "weighted_f1_ci", "accuracy", "macro_f1",
                     "unparseable", "n", "labeler", ...quality means}, ...},
     "mean": {...same metrics, "sets": count},
     "provenance": {...},
     "notice": NON_CLINICAL_NOTICE}
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from imhi_bench.benchmark.data import read_csv, resolve_data_dir
from imhi_bench.benchmark.sets import (
    FORMATS,
    GOLD_COLUMN,
    NON_CLINICAL_NOTICE,
    QUERY_COLUMN,
    get_set,
)
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file
from imhi_bench.scoring.labels import extract_label, gold_label
from imhi_bench.scoring.metrics import mean_over_sets, score_set, set_seed

RULES = "rules"


@dataclass
class Sample:
    set: str
    doc_id: int
    gold: str
    generation: str
    gold_label: str
    label: str | None
    correct: bool
    prompt: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def label_samples(
    set_name: str,
    rows: Iterable[tuple[int, str, str, str | None]],
    *,
    where: str = "",
    labeler=None,
) -> list[Sample]:
    """(doc_id, gold response, generation, prompt) rows -> labelled samples.

    `labeler`, if given and covering the set, reads the labels instead of the rules; it
    has `.sets`, `.name` and `.predict(set, texts) -> list[class]`."""
    set_name = get_set(set_name).name
    rows = list(rows)
    golds = [
        gold_label(set_name, gold, where=f"{where} row {doc_id + 1}" if where else "")
        for doc_id, gold, _, _ in rows
    ]
    gens = [g if isinstance(g, str) else "" for _, _, g, _ in rows]
    if labeler is not None and set_name in labeler.sets:
        labels = list(labeler.predict(set_name, gens))
    else:
        labels = [extract_label(set_name, g) for g in gens]
    return [
        Sample(set_name, doc_id, gold, gen, gl, lab, lab == gl, prompt)
        for (doc_id, gold, _, prompt), gen, gl, lab in zip(rows, gens, golds, labels, strict=True)
    ]


def score_samples(
    samples: dict[str, list[Sample]],
    *,
    seed: int = 0,
    n_boot: int = 1000,
    labeler=None,
) -> dict:
    """The "sets" and "mean" parts of the score JSON."""
    if not samples:
        raise ImhiError("nothing to score: no samples were given")
    per_set = {}
    for name, rows in samples.items():
        if not rows:
            raise ImhiError(f"{name} has no samples to score")
        per_set[name] = score_set(
            [s.gold_label for s in rows], [s.label for s in rows],
            n_boot=n_boot, seed=set_seed(name, seed),
        )
    sets = {}
    for name, m in per_set.items():
        sets[name] = m.to_json()
        sets[name]["labeler"] = (
            labeler.name if labeler is not None and name in labeler.sets else RULES
        )
    return {"sets": sets, "mean": mean_over_sets(per_set)}


QUALITY_KEYS = ("bart_score", "bertscore_f1", "rougeL", "consistency")


def add_quality(scores: dict, samples: dict[str, list[Sample]], quality) -> None:
    """Explanation quality (and, with a labeler, consistency) of every set: per-sample
    values go into each sample, per-set means into `scores["sets"]`, and their unweighted
    mean over sets into `scores["mean"]`.  `quality` is a `quality.QualityConfig`."""
    labeler = quality.labeler
    for name, rows in samples.items():
        gens = [s.generation for s in rows]
        covered = labeler is not None and name in labeler.sets
        # consistency compares the rules with the classifier, whichever produced the labels
        rules = [extract_label(name, g) for g in gens] if covered else [s.label for s in rows]
        q = quality.score_set(name, gens, [s.gold for s in rows], rules)
        for key, values in q.per_sample.items():
            for sample, value in zip(rows, values, strict=True):
                sample.extra[key] = value
        if q.classifier_labels is not None:
            for sample, rule, cls in zip(rows, rules, q.classifier_labels, strict=True):
                sample.extra["rule_label"] = rule
                sample.extra["classifier_label"] = cls
        scores["sets"][name].update(q.to_json())
    for key in QUALITY_KEYS:
        values = [m[key] for m in scores["sets"].values() if m.get(key) is not None]
        if values and len(values) == len(scores["sets"]):
            scores["mean"][key] = sum(values) / len(values)


def report_format(report: dict) -> str | None:
    """The one format every set of a report was evaluated in, or None (mixed, unknown)."""
    formats = {p.get("format") for p in report["provenance"].get("sets", {}).values()}
    return formats.pop() if len(formats) == 1 else None


def make_report(scores: dict, provenance: dict) -> dict:
    return {**scores, "provenance": provenance, "notice": NON_CLINICAL_NOTICE}


def detect_format(
    set_name: str, golds: list[str], data_dir: str | os.PathLike | None = None
) -> dict:
    """Which released file the gold responses come from, with its sha256, so a score of
    existing generations still says what data it was computed on."""
    root = resolve_data_dir(data_dir)
    s = get_set(set_name)
    wanted = set(golds)
    for fmt in FORMATS:
        path = root / s.path(fmt)
        if not path.is_file():
            continue
        try:
            rows = read_csv(path, (QUERY_COLUMN, GOLD_COLUMN))
        except ImhiError:
            continue
        released = {r[GOLD_COLUMN] for r in rows}
        if wanted <= released:
            return {
                "format": fmt,
                "data_file": str(path),
                "data_sha256": sha256_file(path),
                "complete": len(golds) == len(rows),
            }
    return {"format": None, "data_file": None, "data_sha256": None, "complete": None}
