"""Quality metrics entry point, BERTScore/ROUGE-L, consistency and the score/eval options."""

from __future__ import annotations

import argparse
import math

import pytest
from tiny_models import build_tiny_bert_classifier, minilm_dir, tiny_bart_dir, torch_threads

from imhi_bench.cli.options import add_quality_args, quality_from_args
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.quality.bart_score import bart_scores
from imhi_bench.scoring.quality.bertscore import bertscore_f1
from imhi_bench.scoring.quality.config import QualityConfig, compute_quality
from imhi_bench.scoring.quality.consistency import consistency
from imhi_bench.scoring.quality.rouge import rouge_l
from imhi_bench.scoring.quality.table import QUALITY_METRICS, parse_quality_metrics

GOLD = [
    "Yes, the poster suffers from depression. Reasoning: The poster feels hopeless and empty.",
    "No, the poster does not suffer from depression. Reasoning: The post is about a new job.",
    "Yes, the poster suffers from depression. Reasoning: They cannot sleep and cry every day.",
]
GEN = [
    GOLD[0],
    "Reasoning: The poster describes starting a new job and feels fine.",
    "",
]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread is faster and immune to CPU contention (tiny_models)."""
    with torch_threads(1):
        yield


def test_parse_quality_metrics():
    assert parse_quality_metrics("bart,bertscore,rouge") == ["bart", "bertscore", "rouge"]
    assert parse_quality_metrics(" Rouge , bart,rouge ") == ["rouge", "bart"]
    assert parse_quality_metrics("all") == list(QUALITY_METRICS)
    assert parse_quality_metrics("bart_score,rougeL,bertscore_f1") == ["bart", "rouge", "bertscore"]
    assert parse_quality_metrics(None) == [] and parse_quality_metrics("") == []
    with pytest.raises(ImhiError, match="unknown quality metric 'bleu'.*bart,bertscore,rouge") as e:
        parse_quality_metrics("bart,bleu")
    assert "\n" not in str(e.value)


def test_rouge_l_values():
    # LCS("the cat sat", "the cat sat on the mat") = 3: P = 1, R = 1/2, F = 2/3.
    assert rouge_l(["the cat sat"], ["the cat sat on the mat"])[0] == pytest.approx(2 / 3)
    assert rouge_l(["Same words here."], ["same words here"])[0] == pytest.approx(1.0)
    assert rouge_l([""], ["anything"])[0] == 0.0
    with pytest.raises(ImhiError):
        rouge_l(["a"], [])


def test_bertscore_with_local_minilm():
    model = str(minilm_dir())
    f1 = bertscore_f1(GEN[:2], GOLD[:2], model=model, progress=False)
    assert f1[0] == pytest.approx(1.0, abs=1e-4)
    assert 0.0 < f1[1] < 0.99
    # An explicit layer gives a different (still valid) score.
    f1_l2 = bertscore_f1(GEN[1:2], GOLD[1:2], model=model, layers=2, progress=False)
    assert f1_l2[0] != pytest.approx(f1[1], abs=1e-4)
    with pytest.raises(ImhiError, match="cannot load BERTScore model"):
        bertscore_f1(["a"], ["b"], model="/nonexistent/model", progress=False)


def test_compute_quality_all_metrics():
    out = compute_quality(
        ["bart", "bertscore", "rouge"], GEN, GOLD, bart_model=str(tiny_bart_dir()),
        bertscore_model=str(minilm_dir()), batch_size=2, progress=False,
    )
    assert list(out) == ["bart_score", "bertscore_f1", "rougeL"]
    assert all(len(v) == len(GEN) for v in out.values())
    assert out["rougeL"][0] == pytest.approx(1.0) and out["rougeL"][2] == 0.0
    assert out["bertscore_f1"][0] == pytest.approx(1.0, abs=1e-4)
    assert out["bertscore_f1"][2] == 0.0  # empty generation: bert-score's own definition
    # The BART column is exactly BART-score with source = generation, target = gold.
    direct = bart_scores(GEN, GOLD, model=str(tiny_bart_dir()), progress=False)
    assert out["bart_score"] == pytest.approx(direct, abs=1e-6)
    assert compute_quality(["rouge"], [], []) == {"rougeL": []}
    with pytest.raises(ImhiError, match="one gold per generation"):
        compute_quality(["rouge"], ["a"], [])


def test_consistency():
    assert consistency(["yes", "no", "yes", None], ["yes", "yes", "yes", None]) == 0.5
    assert consistency(["a"], ["a"]) == 1.0
    assert math.isnan(consistency([], []))
    with pytest.raises(ImhiError, match="one classifier label per rule label"):
        consistency(["a"], [])


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_quality_args(p)
    return p.parse_args(argv)


def test_quality_args_round_trip(tmp_path):
    assert quality_from_args(_parse([])) is None
    bart = tmp_path / "bart"
    bart.mkdir()
    (bart / "config.json").write_text("{}")  # the check before any work looks no further
    cfg = quality_from_args(_parse(["--quality", "rouge,bart", "--bart-model", str(bart),
                                    "--bertscore-model", "b", "--bertscore-layers", "3"]))
    assert cfg.metrics == ["rouge", "bart"]
    assert (cfg.bart_model, cfg.bertscore_model, cfg.bertscore_layers) == (str(bart), "b", 3)
    assert cfg.bart_checkpoint is None and cfg.labeler is None
    opts = {a.dest for a in argparse.ArgumentParser()._actions}
    p = argparse.ArgumentParser()
    add_quality_args(p)
    added = {a.dest for a in p._actions} - opts
    assert added == {"quality", "bart_model", "bart_checkpoint", "bertscore_model",
                     "bertscore_layers", "labeler"}


@pytest.mark.parametrize("argv, message", [
    (["--quality", "bleu"], "unknown quality metric"),
    (["--quality", "rouge", "--bart-checkpoint", "x.pth"], "add bart to --quality"),
    (["--quality", "bart", "--bart-checkpoint", "/no/such.pth"], "does not exist"),
    # the BART is checked before any model loads or generates
    (["--quality", "bart", "--bart-model", "/no/such/bart"], "--bart-model /no/such/bart: no such"),
    (["--quality", "bertscore", "--bertscore-layers", "-1"], "0 or more"),
    (["--labeler", "/no/such/dir"], "does not exist"),
])
def test_quality_args_errors(argv, message):
    with pytest.raises(ImhiError, match=message):
        quality_from_args(_parse(argv))


def test_score_set_with_labeler(tmp_path):
    build_tiny_bert_classifier(tmp_path / "lab" / "DR", 2)
    cfg = quality_from_args(_parse(["--quality", "rouge", "--labeler", str(tmp_path / "lab")]))
    res = cfg.score_set("dr", GEN, GOLD)
    assert res.classifier_labels is not None and len(res.classifier_labels) == 3
    assert set(res.classifier_labels) <= {"yes", "no"}
    from imhi_bench.scoring.labels.reader import extract_label

    rules = [extract_label("DR", g) for g in GEN]
    assert res.consistency == consistency(rules, res.classifier_labels)
    js = res.to_json()
    assert set(js) == {"rougeL", "consistency"}
    assert js["rougeL"] == pytest.approx(sum(res.per_sample["rougeL"]) / 3)
    # A set the labeler does not cover: no consistency.
    other = cfg.score_set("SAD", ["work stress"], ["This post shows the stress cause related "
                                                  "to work."])
    assert other.consistency is None and "consistency" not in other.to_json()
    # Without a labeler: means only.
    plain = QualityConfig(metrics=["rouge"]).score_set("DR", GEN, GOLD)
    assert set(plain.to_json()) == {"rougeL"}
