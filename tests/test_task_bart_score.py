"""bart_score as an lm-eval metric of the IMHI tasks: where its model comes from, the check
before generation, the aggregation, the scores kept for imhi-bench's quality step, and
plain `lm_eval` on a tiny Llama with a tiny BART."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import tiny_bart_dir, tiny_llama_dir, torch_threads

import imhi_bench.scoring.quality.bart_score as bart_score
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.quality.config import compute_quality
from imhi_bench.scoring.quality.table import DEFAULT_BART_MODEL
from imhi_bench.tasks.hooks import (
    bart_model_setting,
    load_dataset,
    mean_bart_score,
    process_results,
)

ROOT = Path(__file__).resolve().parents[1]
GOLD = "Yes, the poster suffers from depression. Reasoning: The poster feels hopeless."
DOC = {"set": "DR", "gold": GOLD, "doc_id": 0}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("IMHI_BART_MODEL", raising=False)


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """Nothing kept from other tests; each real BART-score computation appends its size."""
    monkeypatch.setattr(bart_score, "_KEPT", {})
    real, seen = bart_score.bart_scores, []

    def counting(srcs, tgts, **kw):
        seen.append(len(srcs))
        return real(srcs, tgts, **kw)

    monkeypatch.setattr(bart_score, "bart_scores", counting)
    return seen


def test_model_comes_from_metadata_then_environment_then_default(monkeypatch, tmp_path):
    from imhi_bench.scoring.quality import bart_model

    bart = str(tiny_bart_dir())
    # the default is not cached: take the hub as reachable, so the id passes the check
    monkeypatch.setattr(bart_model, "check_hub_model", lambda *a, **k: None)
    assert bart_model_setting({}) == (DEFAULT_BART_MODEL, None)
    monkeypatch.setenv("IMHI_BART_MODEL", bart)
    assert bart_model_setting({}) == (bart, None)
    assert bart_model_setting({"imhi_bart_model": "None"}) == ("none", None)
    monkeypatch.setenv("IMHI_BART_MODEL", "none")
    assert bart_model_setting({}) == ("none", None)
    ckpt = tmp_path / "bart_score.pth"
    ckpt.write_bytes(b"")
    assert bart_model_setting({"imhi_bart_model": bart, "imhi_bart_checkpoint": str(ckpt)}) \
        == (bart, str(ckpt))


@pytest.mark.parametrize("metadata, message", [
    ({"imhi_bart_model": "/no/such/bart"},
     "task metadata imhi_bart_model /no/such/bart: no such folder"),
    ({"imhi_bart_model": "{tmp}"}, "is not a model folder (no config.json)"),
    ({}, "IMHI_BART_MODEL (unset: the default) facebook/bart-large-cnn is not in the Hugging "
         "Face cache and the hub is offline"),
    ({"imhi_bart_model": "{bart}", "imhi_bart_checkpoint": "/no/such.pth"},
     "BART checkpoint /no/such.pth does not exist"),
])
def test_a_model_that_cannot_load_fails_at_dataset_load(metadata, message, imhi_dir, tmp_path):
    fill = {"tmp": str(tmp_path), "bart": str(tiny_bart_dir())}
    metadata = {k: v.format(**fill) for k, v in metadata.items()}
    with pytest.raises(ImhiError) as e:
        load_dataset(imhi_set="DR", imhi_format="instruction", imhi_data_dir=str(imhi_dir),
                     **metadata)
    assert message.format(**fill) in str(e.value)
    assert "IMHI_BART_MODEL=none turns bart_score off" in str(e.value)
    assert "\n" not in str(e.value)


def test_task_manager_checks_the_model_before_any_generation(imhi_dir):
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(ROOT / "tasks_yaml"), include_defaults=False,
                     metadata={"imhi_data_dir": str(imhi_dir),
                               "imhi_bart_model": "./no/such/bart"})
    with pytest.raises(ImhiError, match="no such folder"):
        tm.load(["imhi_dr"])


def test_docs_carry_the_model_and_items_carry_the_pair(imhi_dir):
    bart = str(tiny_bart_dir())
    test = load_dataset(imhi_set="DR", imhi_format="instruction", imhi_data_dir=str(imhi_dir),
                        imhi_bart_model=bart)["test"]
    doc = test[3]
    assert doc["bart_model"] == bart and doc["bart_checkpoint"] == ""
    gen = "No, the poster does not suffer from depression."
    assert process_results(doc, [gen])["bart_score"] == (gen, doc["gold"], bart, None)
    off = load_dataset(imhi_set="DR", imhi_format="instruction", imhi_data_dir=str(imhi_dir),
                       imhi_bart_model="none")["test"][3]
    assert off["bart_model"] == "none"
    assert process_results(off, [gen])["bart_score"] is None


def test_aggregation_is_the_mean_bart_score_of_the_pairs(calls):
    bart = str(tiny_bart_dir())
    gens = ["The poster feels hopeless.", "", "A new job, all is fine."]
    items = [process_results(dict(DOC, bart_model=bart), [g])["bart_score"] for g in gens]
    with torch_threads(1):
        value = mean_bart_score(items)
        assert calls == [3]  # the task's pairs in one computation
        direct = bart_score.bart_scores(gens, [GOLD] * 3, model=bart, progress=False)
    assert value == pytest.approx(math.fsum(direct) / 3, abs=1e-5)
    assert value < 0


def test_the_quality_step_reuses_the_tasks_scores(calls, tmp_path):
    """imhi-bench eval: lm-eval's aggregation scores the pairs, then the score pipeline asks
    for the same pairs (in another order, set by set): nothing is computed again."""
    bart = str(tiny_bart_dir())
    gens = [f"The poster mentions problem number {i}." for i in range(5)]
    golds = [GOLD] * 4 + ["No, the poster does not suffer from depression."]
    items = [(g, gold, bart, None) for g, gold in zip(gens, golds)]
    with torch_threads(1):
        task_value = mean_bart_score(items)
        assert calls == [5]
        again = compute_quality(["bart"], gens[::-1], golds[::-1], bart_model=bart,
                                progress=False)["bart_score"][::-1]
        assert calls == [5]  # served from the kept scores
        assert task_value == pytest.approx(math.fsum(again) / 5, abs=1e-12)
        # A new pair is computed alone.
        compute_quality(["bart"], gens + ["Something new."], golds + [GOLD], bart_model=bart,
                        progress=False)
        assert calls == [5, 1]
        # Other weights are other scores: a checkpoint is part of the key.
        import torch

        from imhi_bench.scoring.quality.bart_model import load_bart

        torch.save(load_bart(bart)[0].state_dict(), tmp_path / "same.pth")
        compute_quality(["bart"], gens, golds, bart_model=bart,
                        bart_checkpoint=str(tmp_path / "same.pth"), progress=False)
        assert calls == [5, 1, 5]
        fresh = bart_score.bart_scores(gens, golds, model=bart, batch_size=2, progress=False)
    assert again == pytest.approx(fresh, abs=1e-5)


def test_off_reads_nan_with_one_note(caplog):
    from imhi_bench.tasks import hooks

    hooks._warn_bart_off.cache_clear()
    caplog.set_level(logging.WARNING, logger="lm_eval.imhi")
    assert math.isnan(mean_bart_score([None, None]))
    assert math.isnan(mean_bart_score([None]))  # a second task: no second note
    (note,) = [r.getMessage() for r in caplog.records]
    assert note.startswith("bart_score is off") and "IMHI_BART_MODEL" in note
    assert "\n" not in note


def _lm_eval(tmp_path: Path, imhi_dir: Path, bart_model: str) -> subprocess.CompletedProcess:
    lm_eval = Path(sys.executable).with_name("lm_eval")
    env = dict(os.environ, IMHI_DATA_DIR=str(imhi_dir), IMHI_BART_MODEL=bart_model,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(
        [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={tiny_llama_dir()}",
         "--device", "cpu", "--include_path", "tasks_yaml", "--tasks", "imhi_dr",
         "--limit", "3", "--gen_kwargs", "max_gen_toks=8", "--output_path", str(tmp_path),
         "--log_samples"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def _rows(stdout: str) -> dict[str, str]:
    """Metric -> value of lm-eval's printed table."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 8 and cells[5] and cells[5] != "Metric":
            out[cells[5]] = cells[7]
    return out


def test_plain_lm_eval_prints_bart_score_and_percent_accuracy(tmp_path, imhi_dir):
    bart = str(tiny_bart_dir())
    r = _lm_eval(tmp_path, imhi_dir, bart)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(r.stdout)
    assert {"weighted_f1", "accuracy", "macro_f1", "unparseable", "bart_score"} <= set(rows)
    res = json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]["imhi_dr"]
    samples = [json.loads(line) for line in next(tmp_path.rglob("samples_imhi_dr_*.jsonl"))
               .read_text().splitlines()]
    assert len(samples) == 3
    # accuracy in percent: the mean of 0/100 per sample, 100 x the share read correctly
    from imhi_bench.scoring.labels.gold import gold_label
    from imhi_bench.scoring.labels.reader import extract_label

    right = [extract_label("DR", s["filtered_resps"][0]) == gold_label("DR", s["doc"]["gold"])
             for s in samples]
    assert {s["accuracy"] for s in samples} <= {0.0, 100.0}
    assert res["accuracy,none"] == pytest.approx(100 * sum(right) / 3)
    # bart_score: the BART-score module's mean over the task's (generation, gold) pairs
    with torch_threads(1):
        want = bart_score.bart_scores([s["filtered_resps"][0] for s in samples],
                                      [s["doc"]["gold"] for s in samples], model=bart,
                                      progress=False)
    assert res["bart_score,none"] == pytest.approx(math.fsum(want) / 3, abs=1e-4)
    assert float(rows["bart_score"]) == pytest.approx(res["bart_score,none"], abs=1e-4)
    assert res["bart_score,none"] < 0
    assert "bart_score is off" not in r.stderr


def test_plain_lm_eval_with_bart_score_off(tmp_path, imhi_dir):
    r = _lm_eval(tmp_path, imhi_dir, "none")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(r.stdout)
    assert rows["bart_score"].lower() == "nan" and "weighted_f1" in rows
    notes = [line for line in r.stderr.splitlines() if "bart_score is off" in line]
    assert len(notes) == 1, r.stderr[-3000:]
    res = json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]["imhi_dr"]
    assert math.isnan(res["bart_score,none"])
