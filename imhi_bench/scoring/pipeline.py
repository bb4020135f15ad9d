"""The one scoring pipeline: generations -> the score JSON.

    samples -> labels (rules, or a classifier labeler) -> metrics + bootstrap CI per set and
    the mean -> explanation quality -> provenance -> report

`score_run` is that whole path; `imhi-bench eval`, `imhi-bench score` and the submission
worker all call it, so all three write one schema:

    {"sets": {"DR": {"weighted_f1", "weighted_f1_ci", "accuracy", "macro_f1",
                     "unparseable", "n", "labeler", "per_class", "confusion",
                     ...quality means}, ...},
     "mean": {...same metrics, "sets": count},
     "provenance": {...},
     "notice": NON_CLINICAL_NOTICE}

A set a classifier labeler read also has "labels_by_rules" and "labels_by_classifier" (how
many labels the rules' explicit answers decided, how many the classifier read), and with
consistency "consistency_by_rules" and "consistency_by_classifier" (the same, for its
reading of the explanations).  "per_class" and "confusion" say where the model errs
(`scoring.confusion`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from imhi_bench.benchmark.sets import (
    NON_CLINICAL_NOTICE,
    get_set,
)
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.confusion import error_profile
from imhi_bench.scoring.labeler.explicit import CLASSIFIER, RULES, read_labels
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.scoring.labels.reader import extract_label
from imhi_bench.scoring.metrics import mean_over_sets, score_set
from imhi_bench.scoring.protocol import protocol_json, run_protocol
from imhi_bench.scoring.provenance import base_provenance
from imhi_bench.scoring.quality.table import METRICS
from imhi_bench.scoring.resample import set_seed

LABEL_BY = "label_by"  # per-sample: who decided the label when a classifier labeler ran


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

    `labeler`, if given and covering the set, reads the labels instead of the rules, except
    where the rules find an explicit answer (`labeler.explicit`); it has `.sets`, `.name`
    and `.predict(set, texts) -> list[class]`.  Each sample then says who decided its label
    (extra "label_by": "rules" or "classifier")."""
    set_name = get_set(set_name).name
    rows = list(rows)
    golds = [
        gold_label(set_name, gold, where=f"{where} row {doc_id + 1}" if where else "")
        for doc_id, gold, _, _ in rows
    ]
    gens = [g if isinstance(g, str) else "" for _, _, g, _ in rows]
    reading = None
    if labeler is not None and set_name in labeler.sets:
        reading = read_labels(labeler, set_name, gens)
        labels = reading.labels
    else:
        labels = [extract_label(set_name, g) for g in gens]
    samples = [
        Sample(set_name, doc_id, gold, gen, gl, lab, lab == gl, prompt)
        for (doc_id, gold, _, prompt), gen, gl, lab in zip(rows, gens, golds, labels, strict=True)
    ]
    if reading is not None:
        for i, sample in enumerate(samples):
            sample.extra[LABEL_BY] = reading.source(i)
    return samples


def _decided(flags: Iterable[bool], prefix: str) -> dict[str, int]:
    """{"<prefix>_by_rules": n, "<prefix>_by_classifier": m} of per-sample rule flags."""
    flags = list(flags)
    return {f"{prefix}_by_rules": sum(flags), f"{prefix}_by_classifier": len(flags) - sum(flags)}


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
        rows = samples[name]
        sets[name].update(error_profile(name, [s.gold_label for s in rows],
                                        [s.label for s in rows]))
        covered = labeler is not None and name in labeler.sets
        sets[name]["labeler"] = labeler.name if covered else RULES
        if covered:
            sets[name].update(_decided((s.extra.get(LABEL_BY) == RULES for s in samples[name]),
                                       "labels"))
    return {"sets": sets, "mean": mean_over_sets(per_set)}


QUALITY_KEYS = tuple(m.key for m in METRICS)


def add_quality(scores: dict, samples: dict[str, list[Sample]], quality) -> None:
    """Explanation quality (and, with a labeler, consistency) of every set: per-sample
    values go into each sample, per-set means into `scores["sets"]`, and their unweighted
    mean over sets into `scores["mean"]`.  `quality` is a `quality.config.QualityConfig`."""
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
        if q.classifier_by_rules is not None:
            for sample, by_rules in zip(rows, q.classifier_by_rules, strict=True):
                sample.extra["classifier_label_by"] = RULES if by_rules else CLASSIFIER
            scores["sets"][name].update(_decided(q.classifier_by_rules, "consistency"))
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


@dataclass
class SetInput:
    """One set's generations to score, and what its provenance records about them."""

    rows: list[tuple[int, str, str, str | None]]  # (doc_id, gold response, generation, prompt)
    provenance: dict
    where: str = ""  # names the source in errors, e.g. a file name


@dataclass
class ScoredRun:
    report: dict  # the score JSON
    samples: dict[str, list[Sample]]  # set name -> labelled samples, quality values included


def score_run(
    inputs: dict[str, SetInput],
    provenance: dict,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    quality=None,
) -> ScoredRun:
    """Label, score, add quality and provenance: the score JSON of `inputs` (set name ->
    rows).  `provenance` is what the caller knows of the run (source, model, ...); the
    pipeline adds the code's own (version, commit, time), the seed, the bootstrap count, the
    quality settings and each set's provenance.  `quality` is a `QualityConfig` or None."""
    labeler = quality.labeler if quality is not None else None
    samples = {
        name: label_samples(name, inp.rows, where=inp.where, labeler=labeler)
        for name, inp in inputs.items()
    }
    scores = score_samples(samples, seed=seed, n_boot=n_boot, labeler=labeler)
    if quality is not None:
        add_quality(scores, samples, quality)
    prov = {
        **base_provenance(),
        **provenance,
        "seed": seed,
        "bootstrap": n_boot,
        "quality": quality.provenance() if quality is not None else None,
        "sets": {name: inp.provenance for name, inp in inputs.items()},
    }
    # how the numbers were made, as one comparable object (imhi_bench.core.protocol)
    prov["protocol"] = protocol_json(run_protocol(prov, labeler=labeler))
    return ScoredRun(make_report(scores, prov), samples)
