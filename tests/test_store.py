"""The results store: URL resolution, schema + migrations, paper-reported rows, record_run
(validation, one transaction, a crash or kill leaves no half run), and `imhi-bench db`."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from concurrency import errors_in_threads
from sqlalchemy import func, select, text, update

from imhi_bench.benchmark.sets import SET_NAMES, UNSEEN_SETS
from imhi_bench.cli.main import main
from imhi_bench.cli.options import add_db_args
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.sqlite_wal import enable_wal
from imhi_bench.scoring import coverage as cov
from imhi_bench.store import record
from imhi_bench.store.engine import (
    HEAD_REVISION,
    SQLITE_BUSY_TIMEOUT_MS,
    alembic_config,
    display_url,
    make_engine,
    open_store,
    resolve_db_url,
    store_engine,
)
from imhi_bench.store.record import record_run
from imhi_bench.store.reported import NOT_LOADED, REPORTED, load_reported, reported_run_count
from imhi_bench.store.tables import Base, Model, Prompt, Run, Sample, SetResult
from imhi_bench.store.validate import parse_param_count

ROOT = Path(__file__).resolve().parents[1]


def score_json(**sets: float) -> dict:
    return {
        "sets": {
            name: {"weighted_f1": f1, "weighted_f1_ci": [f1 - 2, f1 + 2], "accuracy": f1 + 1,
                   "macro_f1": f1 - 1, "unparseable": 2, "n": 100}
            for name, f1 in sets.items()
        },
        "mean": {"weighted_f1": sum(sets.values()) / len(sets), "sets": len(sets)},
        "provenance": {"imhi_bench_version": "0.1.0", "git_commit": "abc", "format": "instruction"},
        "notice": "Results are for non-clinical research only",
    }


def sample(set_name: str, doc_id: int, *, correct: bool = True, prompt: str | None = None,
           **extra) -> dict:
    return {"set": set_name, "doc_id": doc_id, "prompt": prompt or f"post {doc_id}",
            "generation": "yes. reasoning", "gold": "yes. gold", "gold_label": "yes",
            "label": "yes" if correct else "no", "correct": correct, **extra}


@pytest.fixture
def url(new_store_url) -> str:
    """A new store, on SQLite and on PostgreSQL (conftest's session server) in turn."""
    return new_store_url()


def counts(factory) -> dict[str, int]:
    """Rows in every table of the store."""
    with factory() as s:
        return {t.name: s.scalar(select(func.count()).select_from(t))
                for t in Base.metadata.sorted_tables}


def empty(factory) -> dict[str, int]:
    return {name: 0 for name in counts(factory)}


# --------------------------------------------------------------------------- URL


def test_url_precedence_explicit_then_env_then_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("IMHI_DB_URL", "sqlite:///from-env.sqlite")
    assert resolve_db_url("postgresql://u:pw@host/db") == "postgresql://u:pw@host/db"
    assert resolve_db_url(None) == "sqlite:///from-env.sqlite"
    monkeypatch.delenv("IMHI_DB_URL")
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app: str(tmp_path / app))
    assert resolve_db_url(None) == f"sqlite:///{tmp_path / 'imhi-bench' / 'imhi.sqlite'}"
    # a bare path is a SQLite file
    assert resolve_db_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"


def test_bad_urls_are_one_line_errors(tmp_path):
    with pytest.raises(ImhiError, match="cannot read the store URL"):
        resolve_db_url("://nonsense")
    with pytest.raises(ImhiError, match="unknown database kind"):
        make_engine("nosuchdb://host/x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ImhiError, match="cannot create the store's folder"):
        open_store(f"sqlite:///{blocker / 'sub' / 'x.sqlite'}")
    assert display_url("postgresql://me:secret@h/db") == "postgresql://me:***@h/db"


# --------------------------------------------------------------------------- schema


def test_new_store_is_created_with_wal_busy_timeout_and_no_rows(url):
    factory = open_store(url)
    engine = store_engine(factory)
    with engine.connect() as conn:
        if url.startswith("sqlite"):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == \
                SQLITE_BUSY_TIMEOUT_MS
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == HEAD_REVISION
    assert counts(factory) == empty(factory)
    assert set(counts(factory)) == {"models", "runs", "set_results", "prompts", "samples",
                                    "submissions"}


def test_opening_or_upgrading_never_inserts_rows_and_db_init_loads_them_once(new_store_url,
                                                                            capsys):
    from alembic import command

    # an old store (the first schema) brought to the newest by opening it, then db upgrade
    old = new_store_url("old")
    command.upgrade(alembic_config(old), "0001")
    factory = open_store(old)
    assert counts(factory) == empty(factory)
    assert main(["db", "upgrade", "--db", old]) == 0
    assert "already at schema" in capsys.readouterr().out
    # a new store through db upgrade
    new = new_store_url("new")
    assert main(["db", "upgrade", "--db", new]) == 0
    assert f"schema (new) -> {HEAD_REVISION}" in capsys.readouterr().out
    factory = open_store(new)
    assert counts(factory) == empty(factory)
    assert reported_run_count(factory) == 0
    # db init loads the paper's rows, and only those; a second init changes nothing
    assert main(["db", "init", "--db", new]) == 0
    assert f"{len(REPORTED)} paper-reported runs loaded" in capsys.readouterr().out
    loaded = counts(factory)
    assert reported_run_count(factory) == loaded["runs"] == len(REPORTED)
    assert loaded["set_results"] == sum(len(e["weighted_f1"]) for e in REPORTED)
    assert loaded["samples"] == loaded["prompts"] == loaded["submissions"] == 0
    with factory() as s:
        ids = s.scalars(select(Run.id).order_by(Run.id)).all()
    assert main(["db", "init", "--db", new]) == 0
    assert counts(factory) == loaded
    with factory() as s:
        assert s.scalars(select(Run.id).order_by(Run.id)).all() == ids
    assert "db init" in NOT_LOADED


def test_head_revision_constant_matches_the_migrations_and_they_match_the_tables(url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() \
        == HEAD_REVISION
    engine = store_engine(open_store(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_store_from_a_newer_version_is_refused(url):
    factory = open_store(url)
    with factory.begin() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ImhiError, match="newer than this imhi-bench"):
        open_store(url)


def test_migrations_are_shipped_as_package_data():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["imhi_bench.store"]
    assert "migrations/script.py.mako" in patterns
    for pkg in ("imhi_bench/store/migrations", "imhi_bench/store/migrations/versions"):
        assert (ROOT / pkg / "__init__.py").is_file()  # found by packages.find


# --------------------------------------------------------------------------- reported rows


def reported_f1(factory, name: str, set_name: str, setting: str = "") -> float | None:
    with factory() as s:
        return s.scalar(
            select(SetResult.weighted_f1).join(Run).join(Model)
            .where(Model.name == name, Run.source == "reported", Run.setting == setting,
                   SetResult.set_name == set_name))


def test_reported_values_and_absent_dashes(url):
    factory = open_store(url)
    assert load_reported(factory) == len(REPORTED)
    assert reported_f1(factory, "MentaLLaMA-chat-13B", "DR") == 85.68
    assert reported_f1(factory, "MentalRoBERTa", "t-sid") == 89.01
    assert reported_f1(factory, "ChatGPT", "swmh", "few-shot") == 60.19
    assert reported_f1(factory, "ChatGPT", "t-sid", "zero-shot") == 33.30
    assert reported_f1(factory, "MentaLLaMA-chat-13B (IMHI-general)", "Irf") == 65.51
    # "–" in the paper: no row at all, not a zero
    assert reported_f1(factory, "MentalRoBERTa", "Irf") is None
    assert reported_f1(factory, "MentalRoBERTa", "MultiWD") is None
    for entry in REPORTED:
        assert set(entry["weighted_f1"]) <= set(SET_NAMES)
        if entry["table"] == "Table 3":
            assert set(entry["weighted_f1"]) == set(UNSEEN_SETS)


def test_db_init_is_idempotent_and_keeps_reproduced_runs(url, capsys):
    assert main(["db", "init", "--db", url]) == 0
    assert "created" in capsys.readouterr().out
    factory = open_store(url)
    rid = record_run(factory, model={"name": "X"}, run={}, results=score_json(DR=80.0))
    with factory() as s:
        ids_before = s.scalars(select(Run.id).order_by(Run.id)).all()
    before = counts(factory)
    # a reported value edited in the store is put back by the next init
    with factory.begin() as s:
        s.execute(update(SetResult).where(SetResult.weighted_f1 == 85.68).values(weighted_f1=1.0))
    assert main(["db", "init", "--db", url]) == 0
    assert "up to date" in capsys.readouterr().out
    assert counts(factory) == before
    with factory() as s:
        assert s.scalars(select(Run.id).order_by(Run.id)).all() == ids_before
        assert s.get(Run, rid).source == "reproduced"
    assert reported_f1(factory, "MentaLLaMA-chat-13B", "DR") == 85.68
    assert main(["db", "upgrade", "--db", url]) == 0
    assert "already at schema" in capsys.readouterr().out


def test_db_command_reports_a_bad_url_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert main(["db", "init", "--db", f"sqlite:///{blocker}/x.sqlite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imhi-bench: error: cannot create the store's folder")
    assert "\n" not in err


def test_add_db_args():
    p = argparse.ArgumentParser()
    add_db_args(p, no_db=True)
    args = p.parse_args(["--db", "sqlite:///x.sqlite", "--no-db"])
    assert args.db == "sqlite:///x.sqlite" and args.no_db is True
    q = argparse.ArgumentParser()
    add_db_args(q)
    assert q.parse_args([]).db is None
    with pytest.raises(SystemExit):
        q.parse_args(["--no-db"])


# --------------------------------------------------------------------------- record_run


def test_record_run_round_trip(url):
    factory = open_store(url)
    results = score_json(DR=80.0, CAMS=40.0)
    results["sets"]["DR"].update(bart_score=-3.2, bertscore_f1=0.61, rougeL=0.3,
                                 consistency=0.93, labeler="rules", future_metric=1.5,
                                 broken_metric=float("nan"))
    results["sets"]["CAMS"]["bart_score"] = float("nan")
    samples = [sample("DR", 0, bart_score=-2.5, rougeL=0.4, judge="ok"),
               sample("dr", 1, correct=False), sample("CAMS", 0, prompt="post 0")]
    rid = record_run(
        factory,
        model={"name": "my-model", "path": "org/my-model", "revision": "abc123",
               "type": "fine-tuned", "params": "7B", "precision": "bf16",
               "training_data": "imhi"},
        run={"backend": "hf", "generation_config": {"max_new_tokens": 256},
             "started_at": "2024-05-13T10:00:00Z"},
        results=results, samples=samples,
    )
    with factory() as s:
        run = s.get(Run, rid)
        assert run.source == "reproduced" and run.status == "finished"
        assert run.format == "instruction"  # from the score JSON's provenance
        assert run.tasks == ["DR", "CAMS"]
        assert run.provenance["git_commit"] == "abc"
        assert run.mean["sets"] == 2
        assert run.generation_config == {"max_new_tokens": 256}
        assert run.started_at.isoformat() == "2024-05-13T10:00:00"
        assert run.finished_at is not None
        m = run.model
        assert (m.params, m.training_data, m.type) == (7_000_000_000, "IMHI", "fine-tuned")
        dr = s.scalars(select(SetResult).where(SetResult.run_id == rid,
                                               SetResult.set_name == "DR")).one()
        assert (dr.weighted_f1, dr.weighted_f1_lo, dr.weighted_f1_hi) == (80.0, 78.0, 82.0)
        assert (dr.accuracy, dr.macro_f1, dr.unparseable, dr.n) == (81.0, 79.0, 2, 100)
        assert (dr.bart_score, dr.bertscore_f1, dr.rouge_l, dr.consistency) == \
            (-3.2, 0.61, 0.3, 0.93)
        assert dr.labeler == "rules"
        assert dr.extra == {"future_metric": 1.5, "broken_metric": None}  # NaN is not JSON
        cams = s.scalars(select(SetResult).where(SetResult.run_id == rid,
                                                 SetResult.set_name == "CAMS")).one()
        assert cams.bart_score is None
        rows = s.scalars(select(Sample).where(Sample.run_id == rid)
                         .order_by(Sample.set_name, Sample.doc_id)).all()
        assert [(r.set_name, r.doc_id, r.correct) for r in rows] == \
            [("CAMS", 0, True), ("DR", 0, True), ("DR", 1, False)]
        assert rows[1].bart_score == -2.5 and rows[1].rouge_l == 0.4
        assert rows[1].extra == {"judge": "ok"}
        assert s.get(Prompt, rows[1].prompt_hash).text == "post 0"
        # CAMS doc 0 and DR doc 0 share a prompt text: stored once
        assert rows[0].prompt_hash == rows[1].prompt_hash
        assert s.scalar(select(func.count()).select_from(Prompt)) == 2


def test_models_are_found_by_name_revision_and_path(url):
    factory = open_store(url)
    a = record_run(factory, model={"name": "m", "revision": "r1"}, run={},
                         results=score_json(DR=1.0))
    b = record_run(factory, model={"name": "m", "revision": "r1", "license": "MIT"},
                         run={}, results=score_json(DR=2.0))
    c = record_run(factory, model={"name": "m", "revision": "r2"}, run={},
                         results=score_json(DR=3.0))
    with factory() as s:
        ma, mb, mc = (s.get(Run, i).model for i in (a, b, c))
        assert ma.id == mb.id != mc.id
        assert ma.license == "MIT"  # filled in by the later record


def test_reproduced_run_of_a_reported_model_stays_apart(url):
    factory = open_store(url)
    load_reported(factory)
    rid = record_run(
        factory, model={"name": "MentaLLaMA-chat-13B", "path": "klyang/MentaLLaMA-chat-13B"},
        run={}, results=score_json(DR=50.0))
    with factory() as s:
        runs = s.scalars(select(Run).join(Model).where(Model.name == "MentaLLaMA-chat-13B")).all()
        assert sorted(r.source for r in runs) == ["reported", "reproduced"]
        assert len({r.model_id for r in runs}) == 1
    assert reported_f1(factory, "MentaLLaMA-chat-13B", "DR") == 85.68
    load_reported(factory)
    with factory() as s:
        assert s.get(Run, rid) is not None  # refreshing reported rows never touches it


# --------------------------------------------------------------------------- coverage


def coverage(counts: dict, provenance: dict | None = None, tasks=None, fmt="instruction",
             source="reproduced"):
    return cov.run_coverage(source=source, tasks=tasks or list(counts), fmt=fmt,
                            provenance=provenance, counts=counts)


def test_run_coverage_rule():
    whole = {"sets": {"DR": {"rows": 405, "complete": True}, "SAD": {"complete": True}}}
    assert coverage({"DR": 405, "SAD": 684}, whole) == (True, None)
    # --limit: partial, unless every set is known to be whole anyway (a limit above its rows)
    cut = {"limit": 20, "sets": {"DR": {"rows": 405, "complete": False}}}
    assert coverage({"DR": 20}, cut) == (False, "--limit 20")
    assert coverage({"DR": 405}, {"limit": 5000, **whole}) == (True, None)
    assert coverage({"DR": 20}, {"limit": 20}) == (False, "--limit 20")
    # a set cut short, by its provenance or by n against the released file's rows
    assert coverage({"DR": 50}, {"sets": {"DR": {"complete": False}}}) == \
        (False, "scored DR 50 of 405")
    assert coverage({"SAD": 684, "DR": 100}) == (False, "scored DR 100 of 405")
    assert coverage({"DR": 405, "SAD": 684}) == (True, None)
    assert coverage({"DR": 35}, fmt="expert") == (True, None)
    # a set it claims but did not score
    assert coverage({"DR": 405}, tasks=["DR", "SAD"]) == (False, "not scored: SAD")
    # nothing says how many samples: unknown (NULL), not complete
    assert coverage({"DR": None}) == (None, "samples scored unknown: DR")
    assert coverage({"swmh": 900}) == (None, "samples scored unknown: swmh")
    assert coverage({"swmh": 900}, {"sets": {"swmh": {"rows": 900}}}) == (True, None)
    # the paper's rows are the full test sets
    assert coverage({"DR": None}, source="reported") == (True, None)
    long = coverage({n: 1 for n in SET_NAMES}, {"sets": {n: {"complete": False}
                                                          for n in SET_NAMES}})
    assert long[0] is False and len(long[1]) <= cov.COVERAGE_LIMIT


def test_a_partial_run_s_score_table_says_so():
    from imhi_bench.scoring.report import score_table

    def report(n: int, prov: dict) -> dict:
        m = {"n": n, "weighted_f1": 50.0, "accuracy": 50.0, "macro_f1": 50.0, "unparseable": 0}
        return {"sets": {"DR": m}, "provenance": prov}

    cut = score_table(report(2, {"limit": 2, "sets": {"DR": {"rows": 405, "complete": False}}}))
    assert "Partial run (--limit 2): these scores cover only part of the test sets" in cut
    assert "Partial run (scored DR 50 of 405)" in score_table(report(50, {}))
    whole = score_table(report(405, {"limit": 500, "sets": {"DR": {"complete": True}}}))
    assert "Partial" not in whole and "Partial" not in score_table(report(405, {}))


def test_released_row_counts_match_the_files(imhi_dir):
    from imhi_bench.benchmark.data import check

    for status in check(imhi_dir):
        if status.state == "ok":
            assert cov.RELEASED_TEST_ROWS[status.fmt][status.set] == status.rows, status


def test_record_run_records_coverage_and_reported_rows_are_complete(url):
    factory = open_store(url)
    load_reported(factory)
    full = score_json(DR=80.0)
    full["sets"]["DR"]["n"] = 405
    limited = score_json(DR=80.0)
    limited["provenance"]["limit"] = 100
    ids = [record_run(factory, model={"name": "m"}, run={}, results=r) for r in (full, limited)]
    with factory() as s:
        assert [(s.get(Run, i).complete, s.get(Run, i).coverage) for i in ids] == \
            [(True, None), (False, "--limit 100")]
        assert set(s.scalars(select(Run.complete).where(Run.source == "reported"))) == {True}


def test_distinct_names_for_other_weights_under_the_same_name(url):
    factory = open_store(url)

    def name_of(path: str, revision: str = "") -> str:
        rid = record_run(factory, model={"name": "llama", "path": path, "revision": revision},
                         run={}, results=score_json(DR=1.0), unique_name=True)
        with factory() as s:
            return s.get(Run, rid).model.name

    import hashlib

    short = hashlib.sha256(b"/b/llama").hexdigest()[:8]
    assert name_of("/a/llama") == "llama"
    assert name_of("/b/llama") == f"llama-{short}"
    assert name_of("/a/llama") == "llama" and name_of("/b/llama") == f"llama-{short}"
    # without unique_name (a name the user gave) the name is kept
    rid = record_run(factory, model={"name": "llama", "path": "/c/llama"}, run={},
                     results=score_json(DR=1.0))
    with factory() as s:
        assert s.get(Run, rid).model.name == "llama"
        assert s.scalar(select(func.count()).select_from(Model)) == 3


def test_upgrade_to_0003_fills_in_the_coverage_of_stored_runs(new_store_url):
    """A store made before runs.complete existed: the upgrade computes each run's coverage
    from what it stored (provenance, n per set) and leaves unknown ones NULL."""
    import json

    from alembic import command

    old = new_store_url("old")
    command.upgrade(alembic_config(old), "0002")
    engine = make_engine(old)
    runs = {
        1: ("reported", None, None),
        2: ("reproduced", {"limit": 10}, {"DR": 10}),
        3: ("reproduced", {"sets": {"DR": {"complete": True}}}, {"DR": 405}),
        4: ("reproduced", None, {"SAD": 684}),
        5: ("reproduced", {}, {"SAD": None}),
    }
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO models (id, name, path, revision, created_at) "
                          "VALUES (1, 'm', '', '', '2024-01-01')"))
        for rid, (source, prov, sets) in runs.items():
            conn.execute(text(
                "INSERT INTO runs (id, model_id, source, tasks, setting, provenance, status, "
                "recorded_at) VALUES (:id, 1, :source, :tasks, '', :prov, 'finished', "
                "'2024-01-01')"),
                {"id": rid, "source": source, "tasks": json.dumps(list(sets or {"DR": 0})),
                 "prov": None if prov is None else json.dumps(prov)})
            for name, n in (sets or {"DR": None}).items():
                conn.execute(text("INSERT INTO set_results (run_id, set_name, n, weighted_f1) "
                                  "VALUES (:r, :s, :n, 50.0)"), {"r": rid, "s": name, "n": n})
    engine.dispose()
    factory = open_store(old)
    with factory() as s:
        got = {r.id: (r.complete, r.coverage) for r in s.scalars(select(Run))}
    assert got == {1: (True, None), 2: (False, "--limit 10"), 3: (True, None),
                   4: (True, None), 5: (None, "samples scored unknown: SAD")}
    with store_engine(factory).connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == HEAD_REVISION


@pytest.mark.parametrize("kwargs, message", [
    ({"results": {"sets": {"NOPE": {"weighted_f1": 1}}}}, "unknown IMHI set 'NOPE'"),
    ({"results": {"sets": {}}}, "no per-set scores"),
    ({"results": {"mean": {}}}, 'with a "sets" object'),
    ({"results": {"sets": {"DR": {"weighted_f1": "high"}}}}, "DR: weighted_f1 must be a number"),
    ({"results": {"sets": {"DR": {"weighted_f1_ci": [1]}}}}, r"must be \[low, high\]"),
    ({"results": {"sets": {"DR": {"n": -1}}}}, "whole number"),
    ({"results": {"sets": {"DR": {"weighted_f1": 1}, "dr": {"weighted_f1": 2}}}}, "twice"),
    ({"model": {}}, "model name is missing"),
    ({"model": {"name": "m", "size": 7}}, "unknown model field"),
    ({"model": {"name": "m", "type": "huge"}}, "model type 'huge' is not known"),
    ({"model": {"name": "m", "training_data": "x"}}, "training data 'x' is not known"),
    ({"model": {"name": "m", "params": "lots"}}, "parameter count 'lots'"),
    ({"run": {"source": "reported"}}, "reproduced runs only"),
    ({"run": {"format": "poetry"}}, "run format 'poetry'"),
    ({"run": {"started_at": "yesterday"}}, "not an ISO date-time"),
    ({"run": {"colour": "red"}}, "unknown run field"),
    ({"samples": [{"set": "SAD", "doc_id": 0}]}, "which results does not score"),
    ({"samples": [{"set": "DR", "doc_id": "zero"}]}, "doc_id must be a row number"),
    ({"samples": [{"set": "DR", "doc_id": 0}, {"set": "DR", "doc_id": 0}]}, "appears twice"),
    ({"samples": [{"set": "DR", "doc_id": 0, "correct": "yes"}]}, "true or false"),
    ({"samples": [{"set": "DR", "doc_id": 0, "x": object()}]}, "cannot be stored as JSON"),
])
def test_bad_input_is_one_error_and_writes_nothing(url, kwargs, message):
    factory = open_store(url)
    before = counts(factory)
    call = {"model": {"name": "m"}, "run": {}, "results": score_json(DR=80.0),
            "samples": None, **kwargs}
    with pytest.raises(ImhiError, match=message) as info:
        record_run(factory, **call)
    assert "\n" not in str(info.value)
    assert counts(factory) == before


def test_parse_param_count():
    assert parse_param_count("13B") == 13_000_000_000
    assert parse_param_count("125m") == 125_000_000
    assert parse_param_count("1.5B") == 1_500_000_000
    assert parse_param_count(7e9) == 7_000_000_000
    assert parse_param_count(None) is None
    for bad in ("B", "-3B", "7Q", -1):
        with pytest.raises(ImhiError):
            parse_param_count(bad)


def test_failure_midway_through_record_run_leaves_nothing(url, monkeypatch):
    factory = open_store(url)
    before = counts(factory)
    reached = []

    def boom(session, run_id, rows):
        # by now the model, the run, its set results and the prompts are flushed
        with factory() as other:
            assert other.get(Run, run_id) is None  # and invisible outside the transaction
        assert session.get(Run, run_id) is not None
        reached.append(run_id)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(record, "_insert_samples", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        record_run(factory, model={"name": "brand-new"}, run={},
                         results=score_json(DR=80.0, SAD=50.0), samples=[sample("DR", 0)])
    assert reached
    assert counts(factory) == before
    with factory() as s:
        assert s.scalar(select(Model).where(Model.name == "brand-new")) is None


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from imhi_bench.store import record as store

    def stall(session, run_id, rows):
        print("in transaction", flush=True)
        time.sleep(60)

    store._insert_samples = stall
    results = {"sets": {"DR": {"weighted_f1": 80.0}, "SAD": {"weighted_f1": 50.0}}}
    store.record_run(sys.argv[1], model={"name": "killed"}, run={}, results=results,
                     samples=[{"set": "DR", "doc_id": 0, "prompt": "p"}])
""")


def test_a_killed_writer_leaves_no_partial_run(url):
    factory = open_store(url)
    before = counts(factory)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, url],
                            stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stdout.readline().strip() == "in transaction"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert counts(open_store(url)) == before
    # and the store is writable again at once
    record_run(url, model={"name": "after"}, run={}, results=score_json(DR=1.0))


def test_record_run_inside_a_callers_transaction_is_a_savepoint(url):
    factory = open_store(url)
    before = counts(factory)
    with factory() as s:
        s.begin()
        rid = record_run(s, model={"name": "tx"}, run={}, results=score_json(DR=1.0))
        assert s.get(Run, rid) is not None
        s.rollback()  # the caller's decision wins
    assert counts(factory) == before
    with factory() as s:
        rid = record_run(s, model={"name": "tx"}, run={}, results=score_json(DR=1.0))
    with factory() as s:
        assert s.get(Run, rid) is not None


def test_record_run_by_url_and_default_store(url, monkeypatch):
    monkeypatch.setenv("IMHI_DB_URL", url)
    rid = record_run(None, model={"name": "env"}, run={}, results=score_json(DR=1.0))
    rid2 = record_run(url, model={"name": "env"}, run={}, results=score_json(DR=2.0))
    assert rid2 == rid + 1


def test_concurrent_writers_all_succeed(url):
    open_store(url)

    def writer(k: int) -> None:
        factory = open_store(url)  # own engine, own connections
        for i in range(5):
            record_run(factory, model={"name": f"w{k}"}, run={},
                             results=score_json(DR=float(i)),
                             samples=[sample("DR", 0, prompt="shared prompt")])

    assert errors_in_threads(writer, 4) == []
    with open_store(url)() as s:
        assert s.scalar(select(func.count()).select_from(Run)
                        .where(Run.source == "reproduced")) == 20
        assert s.scalar(select(func.count()).select_from(Prompt)) == 1


def test_several_openers_of_the_same_new_store_at_once_all_succeed(tmp_path):
    """Six threads open one new SQLite store at once, 40 times over: the switch to WAL
    deadlocks between two of them now and then (1 round in 9 before the retry)."""
    for attempt in range(40):
        url = f"sqlite:///{tmp_path / f'store{attempt}.sqlite'}"
        assert errors_in_threads(lambda _k, url=url: open_store(url), 6) == [], \
            f"round {attempt}"
        factory = open_store(url)
        assert counts(factory) == empty(factory)  # opening inserts nothing


def test_concurrent_db_inits_load_the_paper_rows_once(url):
    open_store(url)
    assert errors_in_threads(lambda _k: load_reported(url), 4) == []
    factory = open_store(url)
    assert reported_run_count(factory) == counts(factory)["runs"] == len(REPORTED)
    assert counts(factory)["set_results"] == sum(len(e["weighted_f1"]) for e in REPORTED)


class _LockedCursor:
    """A DB-API cursor whose first `locked` WAL switches fail as SQLite's deadlock answer."""

    def __init__(self, locked: int, message: str = "database is locked") -> None:
        self.locked, self.message, self.calls = locked, message, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.message)


def test_wal_switch_retries_a_locked_answer_until_the_timeout():
    cursor = _LockedCursor(locked=3)
    enable_wal(cursor, timeout_s=30)
    assert cursor.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(_LockedCursor(locked=1, message="disk I/O error"), timeout_s=30)  # not retried
    forever = _LockedCursor(locked=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(forever, timeout_s=0.05)
    assert 1 < forever.calls < 30
