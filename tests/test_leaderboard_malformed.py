"""The leaderboard under malformed store rows (issue 21, item 10): a row written with plain SQL
(SQLite keeps any text in any column) holding a date that is no date, JSON that does not
parse, a parameter count or a score that is text.  Each is shown as missing ("–", an empty
CSV cell) and counted in one line; no page goes down, no visitor sees a traceback.  Then: an
unexpected error on a page is one line for the visitor (details in the server log), a
provenance recorded before URL masking shows its base_url masked, and `leaderboard
--host/--port` refuse an address it cannot listen on in one line, before Streamlit starts."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from imhi_bench.cli import leaderboard as command
from imhi_bench.cli.main import main
from imhi_bench.leaderboard import data, page_guard, run_data
from imhi_bench.leaderboard.unreadable import UNREADABLE, store_note
from imhi_bench.store.engine import open_store, store_engine
from imhi_bench.store.labels import run_labels
from imhi_bench.store.record import record_run
from imhi_bench.store.tables import Submission
from tests.test_leaderboard import APP, all_sets, score_json, seed

SUBMISSION = "damaged-0000000001"


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> tuple[str, Path, dict[str, int]]:
    """The leaderboard's seed store plus "damaged": a ranked run (every ranked set, samples
    of DR) that a finished submission evaluated.  Its rows get damaged by each test."""
    path = tmp_path / "lb.sqlite"
    url = f"sqlite:///{path}"
    monkeypatch.setenv("IMHI_DB_URL", url)
    ids = seed(url)
    factory = open_store(url)
    ids["damaged"] = record_run(
        factory, model={"name": "damaged", "type": "fine-tuned", "params": "7B"},
        run={"finished_at": "2025-01-01T00:00:00"}, results=score_json(**all_sets(40.0)),
        samples=[{"set": "DR", "doc_id": i, "prompt": f"post {i}", "generation": "yes",
                  "gold": "yes", "gold_label": "yes", "label": "yes" if i % 2 else "no",
                  "correct": bool(i % 2)} for i in range(10)])
    with factory.begin() as s:
        s.add(Submission(id=SUBMISSION, name="damaged", model="/models/damaged",
                         revision="sha256:" + "0" * 64, precision="bf16", backend="hf",
                         adapter="", adapter_revision="", dedupe_key="d" * 64,
                         needs_remote_code=False, allow_pickle=False, status="FINISHED"))
    sql(path, "UPDATE runs SET submission_id = ? WHERE id = ?", SUBMISSION, ids["damaged"])
    return url, path, ids


def sql(path: Path, statement: str, *params) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, params)
    conn.close()


def run_app(*, page: str = "Leaderboard", **choices) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.sidebar.selectbox(key="protocol").set_value(data.ALL_PROTOCOLS).run()
    if page != "Leaderboard":
        at.sidebar.radio(key="page").set_value(page).run()
    for key, value in choices.items():
        at.selectbox(key=key).set_value(value).run()
    assert not at.exception, at.exception  # no traceback on the page
    # nor the guard's one line: a damaged value is handled where it is read
    assert not [e.value for e in at.error], [e.value for e in at.error]
    return at


def texts(at: AppTest) -> list[str]:
    return [str(e.value) for kind in ("caption", "text", "info", "markdown")
            for e in getattr(at, kind)]


def check_every_view(url: str, ids: dict[str, int], field: str, capsys, tmp_path: Path):
    """The damaged run on every page and in the CSV: shown, its value missing and named
    (on the main table and in the CSV only when they read it: not a run's mean or
    provenance)."""
    run_id = ids["damaged"]
    engine = store_engine(open_store(url))
    runs, scores = data.load_runs(engine), data.load_scores(engine)
    named = f"run {run_id} ({field})"
    in_table = field not in ("mean", "provenance")
    on_model_page = True  # it names the run's protocol (runs.protocol) and every field
    note = store_note(runs, scores)
    assert note.startswith("1 run in the store holds values that cannot be read") \
        and named in note if in_table else note == ""
    other = runs[runs["run_id"] != run_id]
    assert not other[UNREADABLE].astype(bool).any()  # only what is damaged is counted
    table = data.default_view(engine, data.ALL_PROTOCOLS, csv=True)  # every column
    assert "damaged" in set(table["model"])  # the row is shown, not dropped
    details = run_data.run_details(engine, run_id)
    results = run_data.run_results(engine, run_id)
    found = details["unreadable"] + (
        [w for w in results[UNREADABLE] if w] if UNREADABLE in results else [])
    assert found == ([field] if on_model_page else [])

    out = tmp_path / "ranked.csv"
    capsys.readouterr()
    assert main(["leaderboard", "--db", url, "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (named in printed and "written as empty cells" in printed) == in_table
    written = pd.read_csv(out)
    assert "damaged" in set(written["model"])

    at = run_app()
    shown = at.dataframe[0].value
    assert "damaged" in set(shown["model"])
    assert any(named in t for t in texts(at)) == in_table
    at = run_app(page="Model", model_run=run_id)
    assert any(t.startswith("Stored values of this run that cannot be read") and field in t
               for t in texts(at)) == on_model_page
    at = run_app(page="Compare", compare_a=run_id, compare_b=ids["EVIL"])
    assert "DR" in set(next(d.value for d in at.dataframe if "B - A" in d.value)["set"])
    at = run_app(page="Queue")
    assert SUBMISSION in set(next(d.value for d in at.dataframe
                                  if SUBMISSION in set(d.value["id"]))["id"])
    return table, written, at


@pytest.mark.parametrize("column, value", [
    ("recorded_at", "yesterday"),
    ("finished_at", "2024-02-30 10:00:00.000000"),
])
def test_unparseable_run_times(store, column, value, capsys, tmp_path):
    url, path, ids = store
    sql(path, f"UPDATE runs SET {column} = ? WHERE id = ?", value, ids["damaged"])
    table, written, _ = check_every_view(url, ids, column, capsys, tmp_path)
    if column == "finished_at":  # the date column: "–" on the page, empty in the CSV
        row = table[table["model"] == "damaged"].iloc[0]
        assert pd.isna(row["date"])
        assert pd.isna(written[written["model"] == "damaged"].iloc[0]["date"])


@pytest.mark.parametrize("column", ["submitted", "finished"])
def test_an_unparseable_submission_time(store, column, capsys):
    """A damaged date in `submissions`: `status` (table and --json) and the queue page list
    the submission, the date missing and named, the other dates as stored."""
    url, path, _ = store
    sql(path, f"UPDATE submissions SET {column} = ? WHERE id = ?", "next tuesday", SUBMISSION)
    other = "finished" if column == "submitted" else "submitted"
    sql(path, f"UPDATE submissions SET {other} = ? WHERE id = ?", "2025-01-02 03:04:05.000000",
        SUBMISSION)
    capsys.readouterr()
    assert main(["status", "--db", url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(SUBMISSION))
    assert "2025-01-02T03:04:05Z" in line and f"unreadable in the store: {column}" in line
    assert main(["status", "--db", url, "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["id"] == SUBMISSION)
    assert (row[column], row[other], row["unreadable"]) == (None, "2025-01-02T03:04:05Z",
                                                            [column])
    at = run_app(page="Queue")
    shown = next(d.value for d in at.dataframe if SUBMISSION in set(d.value["id"]))
    assert shown.set_index("id").loc[SUBMISSION, "finished"] is pd.NaT \
        if column == "finished" else SUBMISSION in set(shown["id"])


def test_a_stored_time_with_a_zone_reads_as_utc(store):
    # not damage: a writer that kept the zone; mixed with naive times it must still load
    url, path, ids = store
    sql(path, "UPDATE runs SET finished_at = ? WHERE id = ?", "2024-06-01T01:00:00+05:00",
        ids["damaged"])
    runs = data.load_runs(store_engine(open_store(url)))
    row = runs[runs["run_id"] == ids["damaged"]].iloc[0]
    assert row["finished_at"] == pd.Timestamp("2024-05-31 20:00:00") and not row[UNREADABLE]


@pytest.mark.parametrize("column, value", [
    ("mean", '{"weighted_f1": '),
    ("provenance", "not json {"),
    ("protocol", '{"name": "default"'),
])
def test_invalid_json_in_a_run(store, column, value, capsys, tmp_path):
    url, path, ids = store
    sql(path, f"UPDATE runs SET {column} = ? WHERE id = ?", value, ids["damaged"])
    table, _, _ = check_every_view(url, ids, column, capsys, tmp_path)
    details = run_data.run_details(store_engine(open_store(url)), ids["damaged"])
    if column == "protocol":  # its name is unknown; its id still says where it ranks
        assert table[table["model"] == "damaged"].iloc[0]["protocol"] == data.UNKNOWN
        assert "damaged" in set(data.default_view(store_engine(open_store(url)))["model"])
    else:
        assert details[column] == {}


def test_non_numeric_model_params(store, capsys, tmp_path):
    url, path, ids = store
    sql(path, "UPDATE models SET params = ? WHERE name = ?", "seven billion", "damaged")
    table, written, _ = check_every_view(url, ids, "params", capsys, tmp_path)
    assert pd.isna(table[table["model"] == "damaged"].iloc[0]["size (B)"])
    assert pd.isna(written[written["model"] == "damaged"].iloc[0]["size (B)"])
    details = run_data.run_details(store_engine(open_store(url)), ids["damaged"])
    assert details["model"]["params"] is None and details["unreadable"] == ["params"]


def test_non_numeric_set_result(store, capsys, tmp_path):
    url, path, ids = store
    sql(path, "UPDATE set_results SET weighted_f1 = ? WHERE run_id = ? AND set_name = 'DR'",
        "n/a", ids["damaged"])
    table, written, _ = check_every_view(url, ids, "DR weighted_f1", capsys, tmp_path)
    row = table[table["model"] == "damaged"].iloc[0]
    # DR missing: the row has no ranked mean ("–") rather than one over fewer sets
    assert pd.isna(row["DR"]) and pd.isna(row[data.MEAN_COLUMN]) and row["CAMS"] == 40.0
    assert pd.isna(written[written["model"] == "damaged"].iloc[0]["DR"])
    results = run_data.run_results(store_engine(open_store(url)), ids["damaged"])
    assert list(results.loc[results[UNREADABLE] != "", "set"]) == ["DR"]


def test_non_integer_sample_doc_id(store):
    url, path, ids = store
    sql(path, "UPDATE samples SET doc_id = 'x' WHERE run_id = ? AND doc_id = 3", ids["damaged"])
    labels = run_labels(store_engine(open_store(url)), [ids["damaged"]])
    # the damaged sample is left out of what is compared; the others are read
    assert labels[ids["damaged"]]["DR"].doc_ids.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    run_app()
    at = run_app(page="Model", model_run=ids["damaged"])
    assert any(t.startswith("DR: 9 samples") for t in texts(at))  # where it errs
    at = run_app(page="Compare", compare_a=ids["damaged"], compare_b=ids["EVIL"])
    paired = next(d.value for d in at.dataframe if "p bootstrap" in d.value)
    assert set(paired["n"].dropna()) == {9}


def test_an_unexpected_error_is_one_line_for_the_visitor(store, monkeypatch):
    url, path, ids = store
    secret = "/srv/private/store.sqlite: boom"

    def fail(*_a, **_k):
        raise RuntimeError(secret)

    monkeypatch.setattr(run_data, "run_results", fail)
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    page_guard.LOG.addHandler(handler)
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        at.sidebar.radio(key="page").set_value("Model").run()
    finally:
        page_guard.LOG.removeHandler(handler)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("This page could not be shown")
    ref = errors[0].split("reference ", 1)[1][:8]
    shown = texts(at) + errors + [str(c.value) for c in at.code]
    assert not any(secret in t or "Traceback" in t for t in shown)
    assert f"reference {ref}" in log.getvalue() and secret in log.getvalue() \
        and "Traceback" in log.getvalue()  # the details: in the server's log only
    # the other pages still work
    at.sidebar.radio(key="page").set_value("Leaderboard").run()
    assert not at.exception and not at.error and at.dataframe
    # and what Streamlit itself would show, outside the guard, is no traceback either
    cmd = command.streamlit_command(8600, "127.0.0.1")
    assert cmd[cmd.index("--client.showErrorDetails") + 1] == "none"


def test_provenance_recorded_before_masking_shows_masked(store):
    url, path, ids = store
    leaky = ('{"backend": "openai", "base_url": "http://me:hunter2@api.example/v1?'
             'api_key=sk-SECRET1&model=x", "note": "see https://h/v1?token=tok-SECRET2."}')
    sql(path, "UPDATE runs SET provenance = ? WHERE id = ?", leaky, ids["damaged"])
    details = run_data.run_details(store_engine(open_store(url)), ids["damaged"])
    assert details["provenance"]["base_url"] == \
        "http://me:***@api.example/v1?api_key=***&model=x"
    assert details["provenance"]["note"] == "see https://h/v1?token=***."
    at = run_app(page="Model", model_run=ids["damaged"])
    shown = " ".join(str(j.value) for j in at.json) + " ".join(texts(at))
    assert "api.example" in shown
    assert not any(s in shown for s in ("hunter2", "sk-SECRET1", "tok-SECRET2"))


def test_host_and_port_errors_are_one_line(tmp_path, monkeypatch, capsys):
    db = tmp_path / "store.sqlite"
    started = []
    monkeypatch.setattr(os, "execve", lambda *a: started.append(a))
    monkeypatch.setattr(command.subprocess, "call", lambda *a, **k: started.append(a) or 0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = {
            ("--port", str(port)): f"--port {port} is in use on 127.0.0.1: stop what "
                                   "listens there",
            ("--host", "0.0.0.0", "--port", str(port)): f"--port {port} is in use on 0.0.0.0",
            # TEST-NET-1 (RFC 5737): never an address of this machine
            ("--host", "192.0.2.1"): "--host 192.0.2.1 is not an address of this machine",
            ("--port", "70000"): "--port 70000 is not a port: use 1-65535",
        }
        for extra, line in cases.items():
            capsys.readouterr()
            assert main(["leaderboard", "--db", str(db), *extra]) == 2, extra
            out, err = capsys.readouterr()
            assert err.startswith(f"imhi-bench: error: {line}") and err.count("\n") == 1, err
            assert "Traceback" not in err and not out
    assert not started  # Streamlit never started
    assert not db.exists()  # checked before the store is opened: nothing written
    # a free port on the same host is accepted and handed to Streamlit
    assert main(["leaderboard", "--db", str(db), "--port", str(port)]) in (0, None)
    assert started
