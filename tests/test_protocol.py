"""A run's protocol (issue 20): recorded by every run, the paper's by default, shown and
diffed by `imhi-bench protocol`, and the unit the leaderboard ranks by."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, text
from tiny_models import build_tiny_llama

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.main import main
from imhi_bench.core.protocol import GOLD_MAX, Protocol
from imhi_bench.leaderboard import data
from imhi_bench.leaderboard.protocols import protocol_choices, reported_table
from imhi_bench.runs.lengths import gold_max_tokens
from imhi_bench.scoring.protocol import (
    DEFAULT_ID,
    REPORTED,
    REPORTED_NAME,
    default_protocol,
    protocol_json,
)
from imhi_bench.store.engine import alembic_config, make_engine, open_store, store_engine
from imhi_bench.store.record import record_run
from imhi_bench.store.reported import load_reported
from imhi_bench.store.tables import Run

CHAT = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path_factory.mktemp("gen-cache")))


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("chat"), hidden_size=32, layers=1,
                            chat_template=CHAT)


def _eval(model: Path, out: Path, *args: str) -> dict:
    assert main(["eval", "--model", str(model), "--tasks", "imhi_dr", "--limit", "2",
                 "--bootstrap", "0", "--no-db", "--output", str(out), *args]) == 0
    return json.loads((out / "imhi_results.json").read_text())


def test_protocol_show_prints_the_default_protocol(capsys):
    assert main(["protocol", "show"]) == 0
    out = capsys.readouterr().out
    p = default_protocol()
    assert f"id               {p.id}" in out and "name             default" in out
    assert "chat_template    false" in out and "max_new_tokens   gold-max" in out
    assert "label_reader: labels are read by rules" in out  # a deviation, named
    assert out.rstrip().endswith(NON_CLINICAL_NOTICE)


def test_default_eval_is_the_default_protocol_and_cuts_no_gold_answer(tiny_chat, tmp_path,
                                                                       imhi_dir, capsys):
    report = _eval(tiny_chat, tmp_path / "run")
    prov = report["provenance"]
    assert prov["protocol"]["id"] == DEFAULT_ID and prov["protocol"]["name"] == "default"
    assert prov["generation"]["max_new_tokens"] == GOLD_MAX
    # the limit is the longest released DR gold response in this model's tokens
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat)
    limits, _ = gold_max_tokens(["imhi_dr"], imhi_dir, tok, context=2048)
    assert prov["tasks"]["imhi_dr"]["generation_kwargs"]["max_gen_toks"] == limits["imhi_dr"]
    out = capsys.readouterr().out
    assert f"Protocol {DEFAULT_ID} (default)" in out


def test_a_training_card_with_the_chat_template_is_evaluated_with_it(tiny_chat, tmp_path,
                                                                     capsys):
    import shutil

    model = tmp_path / "trained"
    shutil.copytree(tiny_chat, model)
    (model / "imhi_training_card.json").write_text(json.dumps({"chat_template": True}))
    report = _eval(model, tmp_path / "run", "--max-new-tokens", "2")
    out = capsys.readouterr().out
    assert "trained with its chat template: evaluating with it too" in out
    assert report["provenance"]["protocol"]["chat_template"] is True
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples_imhi_dr.jsonl")
               .read_text().splitlines()]
    assert samples[0]["prompt"].startswith("<|user|>Consider this post:")
    plain = _eval(model, tmp_path / "plain", "--max-new-tokens", "2", "--no-chat-template")
    assert plain["provenance"]["protocol"]["chat_template"] is False


def _modified_copy(imhi_dir: Path, dest: Path) -> Path:
    """A data dir like the release, but DR's instruction test file has one byte changed."""
    dest.mkdir()
    for entry in imhi_dir.iterdir():
        if entry.name != "test_data":
            os.symlink(entry, dest / entry.name)
    for fmt in (imhi_dir / "test_data").iterdir():
        (dest / "test_data" / fmt.name).mkdir(parents=True)
        for f in fmt.iterdir():
            os.symlink(f, dest / "test_data" / fmt.name / f.name)
    dr = dest / "test_data" / "test_instruction" / "DR.csv"
    raw = dr.read_bytes()
    dr.unlink()
    dr.write_bytes(raw.replace(b"depress", b"Depress", 1))
    return dest


def test_a_run_on_modified_data_is_its_own_protocol_and_never_ranked(tiny_chat, tmp_path,
                                                                      imhi_dir, capsys):
    data_dir = _modified_copy(imhi_dir, tmp_path / "data")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    out = tmp_path / "run"
    assert main(["eval", "--model", str(tiny_chat), "--tasks", "imhi_dr", "--bootstrap", "0",
                 "--max-new-tokens", "2", "--limit", "3", "--data-dir", str(data_dir), "--db", url,
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "differ from the release" in printed
    protocol = json.loads((out / "imhi_results.json").read_text())["provenance"]["protocol"]
    assert protocol["data"] == "modified: DR" and "data modified: DR" in protocol["name"]
    engine = store_engine(open_store(url))
    runs, scores = data.load_runs(engine), data.load_scores(engine)
    assert len(runs) == 1  # recorded, with its data marked modified
    # not in the default protocol's view, not even with partial runs shown
    assert data.build_view(runs, scores, data.View(include_partial=True)).empty
    assert data.default_view(engine).empty
    mixed = data.build_view(runs, scores, data.View(protocol=data.ALL_PROTOCOLS,
                                                    include_partial=True))
    assert len(mixed) == 1 and "data modified: DR" in mixed.iloc[0]["protocol"]


def _report(protocol: Protocol, f1: float) -> dict:
    sets = dict.fromkeys(data.RANKED_SETS, f1)
    return {
        "sets": {s: {"weighted_f1": v, "accuracy": v, "macro_f1": v, "unparseable": 0,
                     "n": 100} for s, v in sets.items()},
        "mean": {"weighted_f1": f1, "sets": len(sets)},
        "provenance": {"format": "instruction", "protocol": protocol_json(protocol),
                       "sets": {s: {"rows": 100, "complete": True} for s in sets}},
    }


def test_the_leaderboard_and_csv_rank_the_default_protocol_only(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    factory = open_store(url)
    load_reported(factory)
    chat = dataclasses.replace(default_protocol(), chat_template=True)
    record_run(factory, model={"name": "m"}, run={}, results=_report(default_protocol(), 60.0))
    record_run(factory, model={"name": "m"}, run={}, results=_report(chat, 70.0))
    engine = store_engine(factory)
    ranked = data.default_view(engine)
    assert list(ranked["model"]) == ["m"] and ranked.iloc[0]["DR"] == 60.0
    mixed = data.default_view(engine, data.ALL_PROTOCOLS)
    assert {"default", "default + chat template"} <= set(mixed["protocol"])
    assert REPORTED_NAME in set(mixed["protocol"])
    runs, scores = data.load_runs(engine), data.load_scores(engine)
    choices = {c.name: c for c in protocol_choices(runs)}
    assert choices["default"].runs == 1 and choices["default"].id == DEFAULT_ID
    assert choices["default + chat template"].differences == "chat template"
    paper = reported_table(runs, scores)
    assert "MentaLLaMA-chat-13B" in set(paper["model"])
    assert set(paper["protocol"]) == {REPORTED_NAME}

    out = tmp_path / "ranked.csv"
    assert main(["leaderboard", "--db", url, "--csv", str(out)]) == 0
    written = pd.read_csv(out)
    assert list(written["model"]) == ["m"] and written.iloc[0]["DR"] == 60.0
    chat_id = choices["default + chat template"].id
    assert main(["leaderboard", "--db", url, "--csv", str(out), "--protocol", chat_id[:6]]) == 0
    assert pd.read_csv(out).iloc[0]["DR"] == 70.0
    assert main(["leaderboard", "--db", url, "--csv", str(out), "--protocol", "all"]) == 0
    assert "protocol" in pd.read_csv(out).columns
    capsys.readouterr()
    assert main(["leaderboard", "--db", url, "--csv", str(out), "--protocol", "zzz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--protocol zzz: no protocol in the store matches" in err[0]


def test_protocol_diff_and_list(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    a, b = tmp_path / "a", tmp_path / "b"
    few = dataclasses.replace(default_protocol(), num_fewshot=2, fewshot_seed=1234,
                              fewshot_sampler="class-balanced")
    for folder, p in ((a, default_protocol()), (b, few)):
        folder.mkdir()
        (folder / "imhi_results.json").write_text(json.dumps(_report(p, 50.0)))
    assert main(["protocol", "diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "3 fields differ" in out and "num_fewshot" in out and "0  ->  2" in out
    assert main(["protocol", "diff", str(a), str(a)]) == 0
    assert "Same protocol: their numbers compare." in capsys.readouterr().out
    rid = record_run(url, model={"name": "m"}, run={}, results=_report(few, 50.0))
    assert main(["protocol", "show", "--run", str(rid), "--db", url]) == 0
    assert "num_fewshot      2" in capsys.readouterr().out
    assert main(["protocol", "list", "--db", url]) == 0
    listed = capsys.readouterr().out
    assert f"{few.id}      1 run   default + 2-shot" in listed
    with open_store(url)() as s:  # a few-shot run says so in its setting too
        assert s.get(Run, rid).setting == "2-shot"
    assert main(["protocol", "show", str(tmp_path / "nope")]) == 2


def test_upgrade_to_0004_fills_in_the_protocol_of_stored_runs(tmp_path):
    from alembic import command

    old = f"sqlite:///{tmp_path / 'old.sqlite'}"
    command.upgrade(alembic_config(old), "0003")
    engine = make_engine(old)
    gen = {"until": ["\n\n\n"], "do_sample": False, "max_gen_toks": 256,
           "chat_template": True, "system_prompt": None}
    prov = {"generation": gen, "tasks": {"imhi_dr": {"format": "instruction",
                                                     "version": 2.0}}}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO models (id, name, path, revision, created_at) "
                          "VALUES (1, 'm', '', '', '2024-01-01')"))
        for rid, source, p in ((1, "reported", None), (2, "reproduced", prov),
                               (3, "reproduced", None)):
            conn.execute(text(
                "INSERT INTO runs (id, model_id, source, tasks, setting, provenance, status, "
                "recorded_at) VALUES (:id, 1, :s, '[\"DR\"]', '', :p, 'finished', "
                "'2024-01-01')"), {"id": rid, "s": source,
                                   "p": None if p is None else json.dumps(p)})
    engine.dispose()
    factory = open_store(old)
    with factory() as s:
        got = {r.id: r for r in s.scalars(select(Run))}
        assert got[1].protocol_id == REPORTED.id
        two = Protocol.from_json(got[2].protocol)
        assert two.chat_template is True and two.max_new_tokens == 256
        assert got[2].protocol_id == two.id != DEFAULT_ID
        assert got[3].protocol["chat_template"] is None  # nothing recorded: unknown
