"""The leaderboard: table shaping and filters (leaderboard.data, run_data, queue_data), every
page and filter of the Streamlit app (AppTest), the `imhi-bench leaderboard` command, and a
real browser (Playwright driving Debian's chromium) on a served app."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import delete

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, SET_NAMES, UNSEEN_SETS
from imhi_bench.cli.main import main
from imhi_bench.leaderboard import data, protocols, queue_data, run_data, widgets
from imhi_bench.scoring.protocol import (
    DEFAULT_ID,
    REPORTED_NAME,
    default_protocol,
    protocol_json,
)
from imhi_bench.store.engine import open_store, store_engine
from imhi_bench.store.record import record_run, record_scored
from imhi_bench.store.reported import NOT_LOADED, load_reported
from imhi_bench.store.tables import Model, Run, Sample, Submission

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "leaderboard" / "app.py")
EVIL = "<script>alert('x')</script> **bold** model"
EVIL_POST = "<img src=x onerror=alert(1)> **not bold** [link](http://example.com)"
CHROMIUM = "/usr/bin/chromium"


def score_json(fmt: str = "instruction", *, limit: int | None = None, **sets: float) -> dict:
    """A score JSON as `eval` writes one: every set scored in full (its provenance says so),
    or, with `limit`, the first `limit` samples of each."""
    n = limit or 100
    return {
        "sets": {name: {"weighted_f1": f1, "weighted_f1_ci": [f1 - 2.5, f1 + 2.5],
                        "accuracy": f1, "macro_f1": f1, "unparseable": 0, "n": n,
                        "bart_score": -3.0}
                 for name, f1 in sets.items()},
        "mean": {"weighted_f1": sum(sets.values()) / len(sets), "sets": len(sets)},
        "provenance": {"format": fmt, "git_commit": "deadbeef", "limit": limit,
                       "sets": {name: {"rows": 100, "complete": n == 100} for name in sets},
                       # made under the default protocol of its format, as eval records it
                       "protocol": protocol_json(default_protocol(fmt))},
    }


def all_sets(base: float, sets=data.RANKED_SETS) -> dict[str, float]:
    return {name: base + i for i, name in enumerate(sets)}


def seed(url: str) -> dict[str, int]:
    """The paper rows plus: X (an older and a newer instruction run), EVIL (completion, with
    samples), and a base model of unknown size."""
    factory = open_store(url)
    load_reported(factory)  # what `imhi-bench db init` does: opening the store adds no rows
    ids = {
        "X old": record_run(factory, model={"name": "X"},
                                  run={"finished_at": "2024-01-01T00:00:00"},
                                  results=score_json(DR=10.0)),
        "X": record_run(factory, model={"name": "X", "type": "fine-tuned",
                                              "params": "13B", "training_data": "IMHI"},
                              run={"finished_at": "2024-06-01T00:00:00"},
                              results=score_json(DR=90.0, CAMS=50.0)),
        "EVIL": record_run(
            factory,
            model={"name": EVIL, "type": "fine-tuned", "params": "7B", "training_data": "IMHI"},
            run={"format": "completion"},
            results=score_json("completion", DR=70.0, dreaddit=60.0),
            samples=[{"set": "DR", "doc_id": i, "prompt": f"{EVIL_POST} #{i}",
                      "generation": f"<script>alert({i})</script> **yes**", "gold": "yes",
                      "gold_label": "yes", "label": "yes" if i % 3 else None,
                      "correct": bool(i % 3)} for i in range(30)]
            + [{"set": "dreaddit", "doc_id": 0, "prompt": "calm post", "generation": "no",
                "gold": "no", "gold_label": "no", "label": "no", "correct": True}],
        ),
        "tiny": record_run(factory, model={"name": "tiny-base", "type": "base"},
                                 run={}, results=score_json(CAMS=20.0, Irf=30.0)),
    }
    return ids


@pytest.fixture
def url(tmp_path: Path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    monkeypatch.setenv("IMHI_DB_URL", url)
    return url


def test_the_leaderboard_reads_the_same_from_postgresql(tmp_path, pg_url):
    """The leaderboard's queries (the ranked view, a run's page, its samples and errors, the
    rank bands) give the same tables from PostgreSQL as from SQLite, timestamps aside."""
    import pandas as pd

    from imhi_bench.leaderboard.band_data import with_rank_bands

    def timeless(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in frame.columns if str(c).endswith("_at")])

    read = {}
    for kind, store in (("sqlite", f"sqlite:///{tmp_path / 'lb.sqlite'}"), ("pg", pg_url)):
        ids = seed(store)
        engine = store_engine(open_store(store))
        runs, scores = data.load_runs(engine), data.load_scores(engine)
        table = data.leaderboard_table(runs, scores, include_partial=True)
        samples, total = run_data.load_samples(engine, ids["EVIL"], set_name="DR")
        read[kind] = {
            "ids": ids, "total": total,
            "view": timeless(data.default_view(engine)),
            "bands": timeless(with_rank_bands(engine, table, list(data.RANKED_SETS))),
            "runs": timeless(runs), "scores": scores,
            "results": run_data.run_results(engine, ids["EVIL"]),
            "samples": samples,
            "errors": run_data.set_errors(engine, ids["EVIL"]),
        }
    sq, pg = read["sqlite"], read["pg"]
    assert sq["ids"] == pg["ids"] and len(sq["view"]) > 0 and sq["total"] == pg["total"] == 30
    for key in ("view", "bands", "runs", "scores", "results", "samples"):
        pd.testing.assert_frame_equal(sq[key].reset_index(drop=True),
                                      pg[key].reset_index(drop=True), check_dtype=False,
                                      obj=key)
    assert list(sq["errors"]) == list(pg["errors"]) == ["DR", "dreaddit"]
    for name, parts in sq["errors"].items():
        assert list(parts) == list(pg["errors"][name])
        for part, value in parts.items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(value, pg["errors"][name][part],
                                              check_dtype=False, obj=f"{name} {part}")
            else:
                assert value == pg["errors"][name][part], (name, part)


@pytest.fixture
def seeded(url: str) -> dict[str, int]:
    return seed(url)


def frames(url: str):
    engine = store_engine(open_store(url))
    return data.load_runs(engine), data.load_scores(engine)


# --------------------------------------------------------------------------- data


def test_table_rows_means_and_latest_only(url, seeded):
    runs, scores = frames(url)
    table = data.leaderboard_table(runs, scores, protocol=data.ALL_PROTOCOLS)
    x = table[table["model"] == "X"]
    assert len(x) == 1  # the newer run only
    row = x.iloc[0]
    # 2 of the 8 ranked sets: no ranked mean ("–"), its own mean over the two beside it
    assert (row["DR"], row["CAMS"], row["sets scored"], row[data.OWN_MEAN_COLUMN]) == \
        (90.0, 50.0, 2, 70.0)
    assert pd_isna(row[data.MEAN_COLUMN]) and row[data.COVERAGE_COLUMN] == "complete"
    assert row["source"] == "reproduced" and row["date"] == "2024-06-01"
    assert row["size (B)"] == 13 and row["mean BART-score"] == -3.0
    chat = table[(table["model"] == "MentaLLaMA-chat-13B") & (table["source"] == "reported")]
    assert chat.iloc[0]["DR"] == 85.68
    assert chat.iloc[0][data.MEAN_COLUMN] == round(sum(
        (45.52, 85.68, 75.79, 76.49, 85.1, 75.11, 63.62, 75.31)) / 8, 2)
    # the paper's own mean over its 10 sets stays visible, unranked
    assert chat.iloc[0][data.OWN_MEAN_COLUMN] == round(sum(
        (45.52, 52.61, 85.68, 75.79, 76.49, 85.1, 75.11, 63.62, 71.7, 75.31)) / 10, 2)
    roberta = table[table["model"] == "MentalRoBERTa"].iloc[0]
    assert pd_isna(roberta["Irf"]) and roberta["sets scored"] == 8  # "–": absent, not 0
    assert pd_isna(roberta[data.MEAN_COLUMN])  # 6 of the 8: not ranked above 8 of 8
    means = table[data.MEAN_COLUMN]
    assert means.notna().sum() == 2 and means.iloc[:2].notna().all()  # missing means last
    assert means.dropna().is_monotonic_decreasing
    every = data.leaderboard_table(runs, scores, latest_only=False,
                                   protocol=data.ALL_PROTOCOLS)
    assert sorted(every[every["model"] == "X"]["DR"]) == [10.0, 90.0]


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_unseen_group_covers_only_the_unseen_sets(url, seeded):
    runs, scores = frames(url)
    table = data.leaderboard_table(runs, scores, sets=UNSEEN_SETS, protocol=data.ALL_PROTOCOLS)
    cols = data.visible_columns(["model", data.MEAN_COLUMN], UNSEEN_SETS)
    assert cols == ["model", data.MEAN_COLUMN, *UNSEEN_SETS]
    x = table[table["model"] == "X"].iloc[0]
    assert pd_isna(x[data.MEAN_COLUMN])  # CAMS only: DR is not an unseen set
    # MentalRoBERTa has no Irf: 3 of the 4 unseen sets is no unseen mean, and it comes last
    rob = table[table["model"] == "MentalRoBERTa"]
    assert pd_isna(rob.iloc[0][data.MEAN_COLUMN])
    ranked = table[table[data.MEAN_COLUMN].notna()]
    assert len(ranked) == 6 and rob.index[0] >= len(ranked)
    gen13 = table[table["model"] == "MentaLLaMA-chat-13B (IMHI-general)"].iloc[0]
    assert gen13[data.MEAN_COLUMN] == round((27.22 + 71.98 + 65.51 + 70.7) / 4, 2)


def test_filters(url, seeded):
    runs, scores = frames(url)
    table = data.leaderboard_table(runs, scores, protocol=data.ALL_PROTOCOLS)

    def names(**kw) -> set[str]:
        return set(data.filter_table(table, data.Filters(**kw))["model"])

    assert names(search="mentallama") == {
        "MentaLLaMA-chat-13B", "MentaLLaMA-chat-13B (IMHI-general)",
        "MentaLLaMA-chat-7B (IMHI-general)"}
    assert names(search="klyang/") == {"MentaLLaMA-chat-13B"}  # path / hub id
    assert names(search="**bold**") == {EVIL}  # literal, not a pattern
    assert names(search=".*") == set()
    assert names(search="'; DROP TABLE runs; --") == set()
    assert names(types=["base"]) == {"LLaMA2-13B", "tiny-base"}
    assert names(training_data=["IMHI-general"]) == {
        "MentaLLaMA-chat-13B (IMHI-general)", "MentaLLaMA-chat-7B (IMHI-general)"}
    assert names(formats=["completion"]) == {EVIL}
    assert names(sources=["reproduced"]) == {"X", EVIL, "tiny-base"}
    assert names(size_range=(5.0, 8.0), include_unknown_size=False) == {
        EVIL, "MentaLLaMA-chat-7B (IMHI-general)"}
    assert {"ChatGPT", "tiny-base"} <= names(size_range=(5.0, 8.0))  # unknown size kept
    assert "ChatGPT" not in names(include_unknown_size=False)
    assert len(data.filter_table(table, data.Filters())) == len(table)
    assert len(data.filter_table(table, data.Filters(types=[], formats=[]))) == len(table)
    options = data.filter_options(runs)
    assert options["type"] == ["API", "base", "discriminative", "fine-tuned"]
    assert options["format"] == ["completion", "instruction"]
    assert options["source"] == ["reported", "reproduced"]
    assert options["size"] == [0.125, 13.0]
    by_dr = data.sort_table(table, "DR", descending=True)
    assert by_dr.iloc[0]["model"] == "MentalRoBERTa"  # 94.23
    assert by_dr["DR"].isna().iloc[-1]


def test_csv_is_the_visible_table_with_formulas_defused(url, seeded):
    runs, scores = frames(url)
    table = data.leaderboard_table(runs, scores)
    record_run(url, model={"name": "=HYPERLINK(\"http://evil\")"}, run={},
                     results=score_json(DR=1.0))
    runs, scores = frames(url)
    table = data.leaderboard_table(runs, scores, protocol=data.ALL_PROTOCOLS)
    view = table[data.visible_columns(["model", "source"], ["DR"])]
    text = data.to_csv_bytes(view).decode()
    lines = text.splitlines()
    assert lines[0] == "model,DR,source"  # the scores first, then the chosen fields
    assert "MentaLLaMA-chat-13B,85.68,reported" in lines
    assert any(line.startswith("\"'=HYPERLINK(") for line in lines)
    assert len(lines) == len(view) + 1


def test_run_results_compare_and_samples(url, seeded):
    engine = store_engine(open_store(url))
    x = run_data.run_results(engine, seeded["X"])
    assert list(x["set"]) == ["CAMS", "DR"]  # SET_NAMES order
    assert x.set_index("set").loc["DR", ["weighted_f1", "ci_low", "ci_high"]].tolist() == \
        [90.0, 87.5, 92.5]
    evil = run_data.run_results(engine, seeded["EVIL"])
    cmp = run_data.compare_runs(x, evil).set_index("set")
    assert cmp.loc["DR", "B - A"] == -20.0
    assert cmp.loc["DR", "A 95% CI"] == "87.50 to 92.50"
    assert pd_isna(cmp.loc["CAMS", "B weighted F1"])
    assert pd_isna(cmp.loc["dreaddit", "A weighted F1"])
    assert run_data.sample_sets(engine, seeded["EVIL"]) == ["DR", "dreaddit"]
    page, total = run_data.load_samples(engine, seeded["EVIL"], limit=10)
    assert total == 31 and len(page) == 10
    wrong, n_wrong = run_data.load_samples(engine, seeded["EVIL"], set_name="DR", wrong_only=True,
                                       limit=100)
    assert n_wrong == 10 and not wrong["correct"].any()
    assert wrong.iloc[0]["post"] == f"{EVIL_POST} #0"
    second, _ = run_data.load_samples(engine, seeded["EVIL"], set_name="DR", limit=5, offset=5)
    assert list(second["doc_id"]) == [5, 6, 7, 8, 9]
    assert run_data.load_samples(engine, seeded["X"])[1] == 0


# --------------------------------------------------------------------------- app


def app(page: str | None = None, protocol: str | None = None):
    """The app, on `page`; with `protocol` (e.g. data.ALL_PROTOCOLS) chosen in the main
    page's protocol selector."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    if protocol:
        at.sidebar.selectbox(key="protocol").set_value(protocol).run()
        assert not at.exception, at.exception
    if page:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, at.exception
    return at


def markdown_rendered(at) -> list[str]:
    """Every piece of text the app rendered as Markdown."""
    out = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "info", "warning",
                 "error", "success"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


def frame_with(at, column: str):
    """The first table on the page with `column` (AppTest does not expose a table's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def paper_frame(at):
    """The table of the paper's reported rows, beside the ranking."""
    return next(d.value for d in at.dataframe
                if list(d.value.columns[:3]) == ["model", "setting", "protocol"])


def assert_common(at) -> None:
    assert not at.exception, at.exception
    assert NON_CLINICAL_NOTICE in [w.value for w in at.warning]
    for shown in markdown_rendered(at):
        assert "<script>" not in shown and "**bold**" not in shown and "<img" not in shown


def test_main_page_ranks_the_default_protocol_and_shows_the_paper_beside_it(seeded):
    at = app()
    assert_common(at)
    ranked = at.dataframe[0].value
    # the default protocol (instruction prompts): X and tiny-base, not the completion run
    assert set(ranked["model"]) == {"X", "tiny-base"}
    # at a glance: rank, name, band, mean, every ranked set, then the fields as badges
    assert list(ranked.columns) == [data.RANK_COLUMN, "model", data.BAND_COLUMN,
                                    data.MEAN_COLUMN, *data.RANKED_SETS, data.ABOUT_COLUMN]
    assert ranked.set_index("model").loc["X", data.ABOUT_COLUMN] == "fine-tuned · 13B · IMHI"
    # every number says how it was made: one protocol, named above the table
    assert any("Protocol: default (3 runs)" in c.value for c in at.caption)
    paper = paper_frame(at)
    assert "MentaLLaMA-chat-13B" in set(paper["model"])
    assert set(paper["protocol"]) == {"as reported; MentalBERT labels; prompts as IMHI.py"}
    assert any("references, not ranked" in h.value for h in at.subheader)


def test_main_page_shows_reported_and_reproduced_rows_with_all_protocols(seeded):
    at = app(protocol=data.ALL_PROTOCOLS)
    assert_common(at)
    table = at.dataframe[0].value
    assert {"default", "default (completion)",
            "as reported; MentalBERT labels; prompts as IMHI.py"} == set(table["protocol"])
    chat = table[(table["model"] == "MentaLLaMA-chat-13B")].iloc[0]
    assert chat[data.ABOUT_COLUMN].startswith("reported · fine-tuned") and chat["DR"] == 85.68
    x = table[table["model"] == "X"].iloc[0]
    assert not x[data.ABOUT_COLUMN].startswith("reported") and x["DR"] == 90.0
    assert EVIL in set(table["model"])  # the exact text, in a data grid cell
    # mixed protocols: the protocol column is added, so every row says how it was made
    assert list(table.columns) == [data.RANK_COLUMN, "model", data.BAND_COLUMN,
                                   data.MEAN_COLUMN, *data.RANKED_SETS, data.ABOUT_COLUMN,
                                   "protocol"]
    assert data.RANKED_SETS == ("CAMS", "DR", "dreaddit", "Irf", "loneliness", "MultiWD",
                                "SAD", "t-sid")
    assert at.get("download_button")[0].label == "Download CSV"
    assert not [i for i in at.info if "Only the paper" in i.value]


@pytest.mark.parametrize("widget, value, expect", [
    ("types", ["base"], {"LLaMA2-13B", "tiny-base"}),
    ("training", ["IMHI-general"], {"MentaLLaMA-chat-13B (IMHI-general)",
                                    "MentaLLaMA-chat-7B (IMHI-general)"}),
    ("formats", ["completion"], {EVIL}),
    ("sources", ["reproduced"], {"X", EVIL, "tiny-base"}),
])
def test_sidebar_filters(seeded, widget, value, expect):
    at = app(protocol=data.ALL_PROTOCOLS)
    at.sidebar.multiselect(key=widget).set_value(value).run()
    assert_common(at)
    assert set(at.dataframe[0].value["model"]) == expect


def test_search_size_group_columns_sort_and_latest(seeded):
    at = app(protocol=data.ALL_PROTOCOLS)
    at.text_input(key="search").input("MENTALLAMA-chat-7b").run()
    assert_common(at)
    assert list(at.dataframe[0].value["model"]) == ["MentaLLaMA-chat-7B (IMHI-general)"]
    at.text_input(key="search").input("**bold**").run()
    assert list(at.dataframe[0].value["model"]) == [EVIL]
    at.text_input(key="search").input("").run()

    at.sidebar.slider(key="size").set_value((5.0, 8.0)).run()
    at.sidebar.checkbox(key="unknown_size").uncheck().run()
    assert set(at.dataframe[0].value["model"]) == {EVIL, "MentaLLaMA-chat-7B (IMHI-general)"}
    at.sidebar.checkbox(key="unknown_size").check().run()
    assert "ChatGPT" in set(at.dataframe[0].value["model"])

    at.sidebar.radio(key="group").set_value("unseen tasks (paper Table 3)").run()
    assert_common(at)
    shown = at.dataframe[0].value
    assert not set(SET_NAMES) - set(UNSEEN_SETS) & set(shown.columns)
    assert set(UNSEEN_SETS) <= set(shown.columns)

    at.sidebar.multiselect(key="columns").set_value(["model", "date"]).run()
    # mixed protocols: the protocol column stays, so every row says how it was made
    assert list(at.dataframe[0].value.columns) == ["model", *UNSEEN_SETS, "protocol", "date"]
    at.sidebar.selectbox(key="sort_by").set_value("Irf").run()
    at.sidebar.checkbox(key="descending").uncheck().run()
    irf = at.dataframe[0].value["Irf"].dropna()
    assert irf.is_monotonic_increasing and irf.iloc[0] == 30.0

    at.sidebar.radio(key="group").set_value("all 10 sets").run()
    at.sidebar.slider(key="size").set_value((0.125, 13.0)).run()
    at.sidebar.multiselect(key="columns").set_value(["model"]).run()
    at.sidebar.checkbox(key="latest").uncheck().run()
    assert list(at.dataframe[0].value["model"]).count("X") == 2
    assert_common(at)


def test_filters_survive_the_store_changing_under_them(url, seeded):
    at = app(protocol=data.ALL_PROTOCOLS)
    at.sidebar.slider(key="size").set_value((5.0, 8.0)).run()
    at.sidebar.multiselect(key="formats").set_value(["completion"]).run()
    assert set(at.dataframe[0].value["model"]) == {EVIL}
    factory = open_store(url)
    with factory.begin() as s:
        s.execute(delete(Run).where(Run.format == "completion"))
    record_run(factory, model={"name": "huge", "params": "70B"}, run={},
                     results=score_json(DR=5.0))
    at.run()
    assert_common(at)
    # the vanished choice is dropped; an empty choice means "all", new types included
    assert at.sidebar.multiselect(key="formats").value == []
    assert "unknown" in at.sidebar.multiselect(key="types").options
    assert "huge" in set(at.dataframe[0].value["model"])


def test_model_page_is_text_only_with_metrics_chart_provenance_and_samples(seeded):
    at = app("Model")
    at.selectbox(key="model_run").set_value(seeded["EVIL"]).run()
    assert_common(at)
    texts = [t.value for t in at.text]
    assert EVIL in texts  # the name, verbatim, as plain text
    metrics = frame_with(at, "ci_low").set_index("set")
    assert metrics.loc["DR", ["weighted_f1", "ci_low", "ci_high"]].tolist() == [70.0, 67.5, 72.5]
    assert at.get("vega_lite_chart")
    assert "deadbeef" in at.json[0].value
    # sample browser: the post and generation are shown as code text, never rendered
    codes = [c.value for c in at.code]
    assert f"{EVIL_POST} #0" in codes and "<script>alert(0)</script> **yes**" in codes
    assert "31 samples match." in [c.value for c in at.caption]
    at.selectbox(key="sample_set").set_value("dreaddit").run()
    assert "1 samples match." in [c.value for c in at.caption]
    at.selectbox(key="sample_set").set_value("DR").run()
    at.checkbox(key="wrong_only").check().run()
    assert_common(at)
    assert "10 samples match." in [c.value for c in at.caption]
    listing = frame_with(at, "doc_id")
    assert not listing["correct"].any() and set(listing["set"]) == {"DR"}
    assert any("extracted label: (none: unparseable)" in t.value for t in at.text)


def test_model_page_for_a_reported_run_and_a_run_without_samples(seeded):
    at = app("Model")
    labels = at.selectbox(key="model_run").options
    chat = next(i for i, label in enumerate(labels) if label.startswith("MentaLLaMA-chat-13B ("))
    at.selectbox(key="model_run").set_value(at.selectbox(key="model_run").options[chat])
    at.run()
    assert_common(at)
    assert any(t.value.startswith("Reported by the paper") for t in at.text)
    assert "No samples are stored for this run." in [i.value for i in at.info]


def test_compare_page(seeded):
    at = app("Compare")
    at.selectbox(key="compare_a").set_value(seeded["X"]).run()
    at.selectbox(key="compare_b").set_value(seeded["EVIL"]).run()
    assert_common(at)
    table = frame_with(at, "B - A").set_index("set")
    assert table.loc["DR", "B - A"] == -20.0
    assert table.loc["DR", "A 95% CI"] == "87.50 to 92.50"
    assert any(EVIL in t.value for t in at.text)
    assert at.get("vega_lite_chart")


def test_only_reported_rows_shows_how_to_add_a_result(url):
    load_reported(url)
    at = app()
    assert_common(at)
    assert "Only the paper's reported rows so far." in [i.value for i in at.info]
    assert NOT_LOADED not in [i.value for i in at.info]
    assert any("imhi-bench score --predictions DIR --name" in c.value for c in at.code)


def test_empty_store_shows_how_to_add_a_first_result(url):
    open_store(url)  # a new store is empty: no paper rows until db init
    at = app()
    assert_common(at)
    assert "The results store is empty." in [i.value for i in at.info]
    assert NOT_LOADED in [i.value for i in at.info]
    assert any("imhi-bench db init" in c.value for c in at.code)
    assert not at.dataframe


def test_unusable_store_is_an_error_on_the_page_not_a_crash(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{blocker}/x.sqlite")
    at = app()
    assert_common(at)
    assert "Cannot open the results store." in [e.value for e in at.error]
    assert any("cannot create the store's folder" in t.value for t in at.text)


def test_done_when_reported_and_recorded_score_show_together(url):
    """db init, then a score recorded under a name, then the app (the lead adds the CLI
    `score --name` version of this)."""
    assert main(["db", "init", "--db", url]) == 0
    results = score_json(DR=77.7, SAD=55.5)
    results["notice"] = NON_CLINICAL_NOTICE
    record_run(url, model={"name": "my-run"}, run={"backend": "score"}, results=results)
    at = app()
    assert_common(at)
    paper = paper_frame(at).set_index("model")  # beside the ranking
    assert paper.loc["MentaLLaMA-chat-13B", "DR"] == 85.68
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["my-run", "DR"] == 77.7
    assert pd_isna(table.loc["my-run", data.ABOUT_COLUMN])  # nothing known of it: "–"


def test_done_when_cli_db_init_score_name_then_app(url, tmp_path, imhi_dir):
    """The issue's end-to-end check through the CLI: `db init`, `score --predictions DIR
    --name X`, then the app shows the paper row and X side by side."""
    import csv

    from imhi_bench.benchmark.data import load_examples

    preds = tmp_path / "preds"
    preds.mkdir()
    for name in ("DR", "SAD"):
        with open(preds / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["goldens", "generated_text"])
            for e in load_examples(name, "instruction", imhi_dir)[:50]:
                w.writerow([e.gold, e.gold if e.doc_id % 5 else "no idea"])
    assert main(["db", "init", "--db", url]) == 0
    assert main(["score", "--predictions", str(preds), "--name", "X", "--db", url]) == 0
    assert main(["score", "--predictions", str(preds), "--name", "Y", "--no-db"]) == 0
    at = app()
    assert_common(at)
    paper = paper_frame(at).set_index("model")
    assert paper.loc["MentaLLaMA-chat-13B", "DR"] == 85.68
    # 50 of each file's rows: a partial run, recorded as such and not ranked by default;
    # IMHI.py's CSVs do not say how their prompts were made: a protocol of its own
    assert "X" not in set(at.dataframe[0].value["model"])
    at.sidebar.selectbox(key="protocol").set_value(data.ALL_PROTOCOLS).run()
    at.sidebar.checkbox(key="partial").check().run()
    # the fields folded into badges are columns of their own when chosen
    at.sidebar.multiselect(key="columns").set_value(
        [*data.DEFAULT_COLUMNS, "source", data.COVERAGE_COLUMN]).run()
    assert_common(at)
    table = at.dataframe[0].value.set_index(["model", "source"])
    x = table.loc[("X", "reproduced")]
    assert 50 < x["DR"] < 100
    assert x["coverage"] == "partial: scored DR 50 of 405, SAD 50 of 684"
    assert "Y" not in set(at.dataframe[0].value["model"])
    runs = open_store(url)
    with runs() as session:
        run = session.query(Run).join(Model).filter(Model.name == "X").one()
        assert run.format == "instruction"
        assert session.query(Sample).filter(Sample.run_id == run.id).count() == 100
        assert run.complete is False


def test_app_picks_up_a_new_run_on_the_next_load(url, seeded):
    assert "later" not in set(app().dataframe[0].value["model"])
    record_run(url, model={"name": "later"}, run={}, results=score_json(DR=1.0))
    assert "later" in set(app().dataframe[0].value["model"])


# --------------------------------------------------------------------------- ranking


def seed_mixed(url: str) -> dict[str, int]:
    """The paper rows plus runs the ranking must not mix: a full run of the 8 public sets,
    an `eval --limit 20` run and a worker `--limit 10` run (both scoring higher than
    anything), a complete single-set run, and a run that says nothing of its coverage."""
    factory = open_store(url)
    load_reported(factory)
    unknown = score_json(**all_sets(95.0))
    del unknown["provenance"]["sets"]
    for row in unknown["sets"].values():
        row.pop("n")
    return {
        "full": record_run(factory, model={"name": "full"}, run={},
                           results=score_json(**all_sets(70.0))),
        "limit20": record_run(factory, model={"name": "limited-20"}, run={},
                              results=score_json(limit=20, **all_sets(90.0))),
        "limit10": record_run(factory, model={"name": "worker-10"},
                              run={"finished_at": "2026-01-01T00:00:00"},
                              results=score_json(limit=10, **all_sets(91.0))),
        "single": record_run(factory, model={"name": "single"}, run={},
                             results=score_json(DR=99.0)),
        "unknown": record_run(factory, model={"name": "no-counts"}, run={}, results=unknown),
    }


PARTIAL = {"limited-20", "worker-10", "no-counts"}


def greyed_rows(element) -> set[int]:
    """Positions of the rows the app's Styler greys."""
    import re

    styles = element.proto.arrow_data.styler.styles
    return {int(i) for i in re.findall(r"_row(\d+)_col0\b", styles)} if "9aa0a6" in styles \
        else set()


def test_partial_runs_are_recorded_as_such_and_not_ranked_by_default(url):
    ids = seed_mixed(url)
    with open_store(url)() as s:
        stored = {k: (s.get(Run, i).complete, s.get(Run, i).coverage) for k, i in ids.items()}
    assert stored == {
        "full": (True, None), "single": (True, None),
        "limit20": (False, "--limit 20"), "limit10": (False, "--limit 10"),
        "unknown": (None, "samples scored unknown: " + ", ".join(data.RANKED_SETS)),
    }
    runs, scores = frames(url)
    ranked = data.build_view(runs, scores, data.View(), csv=True)
    assert not PARTIAL & set(ranked["model"])
    assert set(ranked[data.COVERAGE_COLUMN]) == {"complete"}
    shown = data.build_view(runs, scores, data.View(include_partial=True), csv=True)
    assert PARTIAL <= set(shown["model"])
    # ranks: the complete runs with a mean only, 1, 2, ...; none for partial ones
    rank = dict(zip(shown["model"], shown[data.RANK_COLUMN], strict=True))
    assert rank["full"] == 1 and pd_isna(rank["single"])
    assert all(pd_isna(rank[m]) for m in PARTIAL)
    # listed after every ranked row, although they score higher
    assert list(shown["model"])[-3:] == ["no-counts", "worker-10", "limited-20"]  # by mean
    badge = shown.set_index("model")[data.COVERAGE_COLUMN]
    assert badge["limited-20"] == "partial: --limit 20"
    assert badge["no-counts"].startswith("unknown: samples scored unknown: CAMS")
    # the single-set run is complete: in the ranking, but with no mean, after the means
    single = ranked[ranked["model"] == "single"].iloc[0]
    assert pd_isna(single[data.MEAN_COLUMN]) and single["sets scored"] == 1
    assert list(ranked["model"][:2]) == ["full", "single"]  # the paper's rows: beside it
    mixed = data.build_view(runs, scores, data.View(protocol=data.ALL_PROTOCOLS))
    assert list(mixed["model"][:3]) == ["full", "MentaLLaMA-chat-13B", "ChatGPT"]
    # a later partial try of a model never hides its complete run
    record_run(url, model={"name": "full"}, run={},
               results=score_json(limit=5, **all_sets(10.0)))
    runs, scores = frames(url)
    again = data.build_view(runs, scores, data.View())
    assert again[again["model"] == "full"].iloc[0][data.MEAN_COLUMN] == 73.5


def test_app_hides_partial_runs_until_the_toggle_then_greys_them(url):
    seed_mixed(url)
    at = app()
    assert_common(at)
    table = at.dataframe[0].value
    assert not PARTIAL & set(table["model"]) and "full" in set(table["model"])
    assert greyed_rows(at.dataframe[0]) == set()
    assert at.dataframe[0].proto.placeholder == "–"  # missing values, never "None"
    at.sidebar.checkbox(key="partial").check().run()
    assert_common(at)
    table = at.dataframe[0].value
    assert PARTIAL <= set(table["model"])
    # the badges say which rows are partial or of unknown coverage: those are greyed
    unranked = {i for i, badge in enumerate(table[data.ABOUT_COLUMN].fillna(""))
                if badge.endswith(("partial", "coverage unknown"))}
    assert len(unranked) == 3 and greyed_rows(at.dataframe[0]) == unranked
    assert table.loc[sorted(unranked), data.RANK_COLUMN].isna().all()
    assert min(unranked) == len(table) - 3  # after the ranked rows
    assert any("Greyed rows are partial" in c.value for c in at.caption)
    # the model page says it too
    at.sidebar.radio(key="page").set_value("Model").run()
    labels = at.selectbox(key="model_run").options
    limited = next(o for o in labels if o.startswith("limited-20 ("))
    assert limited.endswith("; partial: --limit 20)")
    at.selectbox(key="model_run").set_value(
        at.selectbox(key="model_run").options[labels.index(limited)]).run()
    assert_common(at)
    assert "Coverage: partial: --limit 20 (not ranked on the leaderboard)" in \
        [t.value for t in at.text]


def test_a_store_of_partial_runs_only_says_where_they_are(url):
    record_run(url, model={"name": "smoke"}, run={}, results=score_json(limit=5, DR=50.0))
    at = app()
    assert_common(at)
    assert at.dataframe[0].value.empty
    assert any("Show partial runs" in i.value for i in at.info)
    at.sidebar.checkbox(key="partial").check().run()
    assert list(at.dataframe[0].value["model"]) == ["smoke"]
    assert not any("Show partial runs" in i.value for i in at.info)


@pytest.mark.parametrize("group", list(data.SET_GROUPS))
def test_every_ranked_mean_is_over_the_same_sets(url, group):
    seed_mixed(url)
    seed_more = open_store(url)
    record_run(seed_more, model={"name": "unseen-only"}, run={},
               results=score_json(**all_sets(40.0, UNSEEN_SETS)))
    runs, scores = frames(url)
    sets = list(data.SET_GROUPS[group])
    assert sets == [s for s in SET_NAMES if s in sets]  # one set order everywhere
    table = data.build_view(runs, scores, data.View(group=group, protocol=data.ALL_PROTOCOLS),
                            csv=True)
    assert list(table.columns).index(data.MEAN_COLUMN) + 1 == list(table.columns).index(sets[0])
    has_mean = table[data.MEAN_COLUMN].notna()
    for _, row in table[has_mean].iterrows():
        assert row[sets].notna().all()
        assert row[data.MEAN_COLUMN] == round(sum(row[sets]) / len(sets), 2)
    assert table[~has_mean][sets].isna().any(axis=1).all()  # "–" only when a set is missing
    assert not has_mean[has_mean.sum():].any()  # every row without a mean after those with
    means = dict(zip(table["model"] + "|" + table["setting"].fillna(""),
                     table[data.MEAN_COLUMN], strict=True))
    if group == "unseen tasks (paper Table 3)":
        assert pd_isna(means["MentalRoBERTa|"])  # 3 of the 4 unseen sets
        assert means["unseen-only|"] == 41.5
    else:
        assert pd_isna(means["MentalRoBERTa|"])  # 6 of the 8 (or 8 of 10) sets
        assert not pd_isna(means["MentaLLaMA-chat-13B|"])
        assert pd_isna(means["unseen-only|"])


def test_csv_command_writes_the_apps_default_ranked_table(url, tmp_path, capsys):
    seed_mixed(url)
    out = tmp_path / "out" / "ranked.csv"
    assert main(["leaderboard", "--db", url, "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and NON_CLINICAL_NOTICE in printed
    at = app()
    assert_common(at)
    shown = at.dataframe[0].value
    # byte for byte what the app's Download CSV gives for its first view: the grid's
    # columns and every field its badges fold, with the stored values
    assert out.read_bytes() == data.to_csv_bytes(
        data.default_view(store_engine(open_store(url)), csv=True))
    import pandas as pd

    written = pd.read_csv(out)
    assert list(written.columns) == data.visible_columns(
        [*data.DEFAULT_COLUMNS, *data.CSV_COLUMNS], data.RANKED_SETS)
    assert set(shown.columns) < set(written.columns)
    assert list(written["model"]) == list(shown["model"])
    assert list(written[data.RANK_COLUMN].astype("Int64")) == \
        list(shown[data.RANK_COLUMN].astype("Int64"))
    assert written.set_index("model").loc["full", data.COVERAGE_COLUMN] == "complete"
    assert not PARTIAL & set(written["model"]) and "full" in set(written["model"])
    assert not list(tmp_path.glob("out/.*"))  # no temporary file left behind
    # a folder is refused in one line, and nothing is written
    assert main(["leaderboard", "--db", url, "--csv", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_same_named_folders_get_distinct_default_names(url, tmp_path):
    """Two checkpoints in folders both named `llama`, recorded as `eval` records them (its
    `after_run`, no --name): two models with two names, each found again by its path."""
    from types import SimpleNamespace

    from imhi_bench.cli import eval as eval_cli

    def eval_run(folder: Path, f1: float) -> int:
        report = score_json(**all_sets(f1))
        report["provenance"]["model_resolved"] = str(folder.resolve())
        args = SimpleNamespace(no_db=False, db=url, adapter=None, model=str(folder),
                               name=None, revision=None, dtype="auto")
        return eval_cli.after_run(SimpleNamespace(report=report, samples={}), args)

    a, b = tmp_path / "a" / "llama", tmp_path / "b" / "llama"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert eval_cli.model_label(str(a)) == eval_cli.model_label(str(b)) == "llama"
    ids = [eval_run(a, 60.0), eval_run(b, 50.0), eval_run(b, 55.0), eval_run(a, 65.0)]
    with open_store(url)() as s:
        models = [s.get(Run, i).model for i in ids]
    digest = __import__("hashlib").sha256(str(b.resolve()).encode()).hexdigest()[:8]
    assert [m.name for m in models] == ["llama", f"llama-{digest}", f"llama-{digest}", "llama"]
    assert models[0].id == models[3].id and models[1].id == models[2].id
    # --name is taken as given
    args = SimpleNamespace(no_db=False, db=url, adapter=None, model=str(b), name="mine",
                           revision=None, dtype="auto")
    report = score_json(DR=1.0)
    report["provenance"]["model_resolved"] = str(b.resolve())
    mine = eval_cli.after_run(SimpleNamespace(report=report, samples={}), args)
    with open_store(url)() as s:
        assert s.get(Run, mine).model.name == "mine"
    # a hub id at another revision is told apart by it
    hub = [record_scored(url, score_json(DR=1.0), {}, unique_name=True,
                         model={"name": "org/m", "path": "org/m", "revision": rev})
           for rev in ("1111111111111111", "2222222222222222")]
    with open_store(url)() as s:
        assert [s.get(Run, i).model.name for i in hub] == ["org/m", "org/m@222222222222"]
    at = app()
    assert_common(at)
    names = list(at.dataframe[0].value["model"])
    assert names.count("llama") == 1 and names.count(f"llama-{digest}") == 1


def test_eval_help_and_readme_say_the_same_default_name():
    import re

    from imhi_bench.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    name = next(a for a in sub.choices["eval"]._actions if "--name" in a.option_strings)
    said = " ".join(name.help.split())
    assert "folder name or hub id" in said and "short hash of its path" in said
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert re.search(r"folder name or hub id, plus a short hash of its path", readme)


def test_sets_metrics_and_samples_in_one_order_and_scale(url):
    factory = open_store(url)
    results = score_json(dreaddit=60.0, Irf=50.0, DR=70.0)
    results["sets"]["DR"].update(bertscore_f1=0.61, rougeL=0.3, consistency=0.9)
    rid = record_run(factory, model={"name": "q"}, run={}, results=results, samples=[
        {"set": name, "doc_id": i, "prompt": f"{name} {i}", "generation": "yes",
         "gold": "yes", "gold_label": "yes", "label": "yes", "correct": True}
        for name in ("Irf", "dreaddit", "DR") for i in range(2)])
    engine = store_engine(factory)
    order = ["DR", "dreaddit", "Irf"]  # SET_NAMES order; by bytes "Irf" < "dreaddit"
    metrics = run_data.run_results(engine, rid)
    assert list(metrics["set"]) == order
    dr = metrics.set_index("set").loc["DR"]
    assert (dr["BERTScore (%)"], dr["ROUGE-L (%)"], dr["consist. (%)"]) == (61.0, 30.0, 90.0)
    assert "BARTScore (log-lik., <= 0)" in metrics.columns
    page, _ = run_data.load_samples(engine, rid, limit=10)
    assert list(dict.fromkeys(page["set"])) == order
    assert run_data.sample_sets(engine, rid) == order
    assert run_data.mean_text({"weighted_f1": 60.0, "bertscore_f1": 0.5}) == \
        "weighted_f1 60.0, bertscore_f1 50.00%"


# --------------------------------------------------------------------------- command


def test_store_without_the_paper_rows_says_db_init_loads_them(url):
    """A store with reproduced runs only: the page and `imhi-bench leaderboard` both say,
    in one line, that db init loads the paper's rows; after db init neither does."""
    record_run(url, model={"name": "mine"}, run={}, results=score_json(DR=60.0))
    at = app()
    assert_common(at)
    assert [i.value for i in at.info].count(NOT_LOADED) == 1
    assert "\n" not in NOT_LOADED and "imhi-bench db init" in NOT_LOADED
    assert list(at.dataframe[0].value["model"]) == ["mine"]
    assert "Only the paper's reported rows so far." not in [i.value for i in at.info]
    load_reported(url)  # what db init does
    at = app()
    assert_common(at)
    assert NOT_LOADED not in [i.value for i in at.info]
    assert "MentaLLaMA-chat-13B" in set(paper_frame(at)["model"])


def test_leaderboard_command_arguments(url, monkeypatch, capsys):
    from imhi_bench.cli import leaderboard

    cmd = leaderboard.streamlit_command(8600, "127.0.0.1")
    assert cmd[1:4] == ["-m", "streamlit", "run"]
    assert cmd[4].endswith(os.path.join("imhi_bench", "leaderboard", "app.py"))
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert main(["leaderboard", "--db", url, "--port", "0"]) == 2
    # a good invocation hands over to streamlit with the resolved URL in the environment
    seen = {}
    monkeypatch.setattr(os, "execve", lambda path, argv, env: seen.update(argv=argv, env=env))
    monkeypatch.setattr(leaderboard.subprocess, "call",
                        lambda argv, env: seen.update(argv=argv, env=env) or 0)
    args = argparse.Namespace(db=url, port=8601, host="127.0.0.1")
    capsys.readouterr()
    leaderboard.run(args)
    assert seen["env"]["IMHI_DB_URL"] == url
    assert seen["argv"][seen["argv"].index("--server.port") + 1] == "8601"
    # a new store has none of the paper's rows: said once, before the server starts
    out = capsys.readouterr().out.splitlines()
    assert out[0] == NOT_LOADED and out[1].startswith("leaderboard on http://127.0.0.1:8601")
    load_reported(url)
    leaderboard.run(args)
    assert NOT_LOADED not in capsys.readouterr().out


# --------------------------------------------------------------------------- queue


def seed_queue(url: str) -> dict[str, str]:
    """One submission in each state; submitter-controlled text is hostile."""
    import datetime as dt

    from imhi_bench.queue import jobs as queue

    factory = open_store(url)

    def add(key: str, name: str, seconds: int, **fields) -> str:
        sub_id = f"{key}-{seconds:010d}"
        with factory.begin() as s:
            s.add(Submission(
                id=sub_id, name=name, model=f"/models/{EVIL}", revision="sha256:" + "0" * 64,
                precision="bf16", backend="hf", adapter="", adapter_revision="",
                dedupe_key=sub_id.ljust(64, "0"), needs_remote_code=False, allow_pickle=False,
                status="PENDING", submitted=dt.datetime(2026, 1, 1, 0, 0, seconds), **fields))
        return sub_id

    ids = {"finished": add("done", "done-model", 1), "running": add("run", "run-model", 2),
           "failed": add("bad", "bad-model", 3), "pending": add("wait", "wait-model", 4)}
    job = queue.claim(factory, "host:1:aaaaaa")
    queue.finish(factory, job, lambda session: record_run(
        session, model={"name": "done-model"}, run={}, results=score_json(DR=42.0)))
    queue.claim(factory, "host:2:bbbbbb")
    queue.fail(factory, queue.claim(factory, "host:3:cccccc"), f"cannot load model {EVIL_POST}")
    return ids


def test_queue_data_by_state(url):
    ids = seed_queue(url)
    q = queue_data.load_queue(store_engine(open_store(url)))
    assert list(q.columns) == list(queue_data.QUEUE_COLUMNS)
    assert dict(zip(q["id"], q["status"])) == {
        ids["finished"]: "FINISHED", ids["running"]: "RUNNING", ids["failed"]: "FAILED",
        ids["pending"]: "PENDING"}
    failed = queue_data.queue_section(q, "FAILED")
    assert list(failed["reason"]) == [f"cannot load model {EVIL_POST}"]
    assert list(queue_data.queue_section(q, "FINISHED")["runs"]) == [1]
    assert list(queue_data.queue_section(q, "RUNNING")["worker"]) == ["host:2:bbbbbb"]


def test_queue_page_shows_pending_running_and_failed_with_reasons_as_text(url):
    ids = seed_queue(url)
    at = app("Queue")
    assert_common(at)
    assert [h.value for h in at.subheader] == ["Running (1)", "Pending (1)", "Failed (1)",
                                               "Finished (1)"]
    assert "1 running, 1 pending, 1 failed, 1 finished" in [c.value for c in at.caption]
    failed = frame_with(at, "reason")
    assert list(failed["id"]) == [ids["failed"]]
    assert list(failed["reason"]) == [f"cannot load model {EVIL_POST}"]  # verbatim, a cell
    pending = next(d.value for d in at.dataframe if ids["pending"] in set(d.value["id"]))
    assert list(pending["model"]) == [f"/models/{EVIL}"]
    running = frame_with(at, "heartbeat")
    assert list(running["worker"]) == ["host:2:bbbbbb"]
    assert any("imhi-bench submit --model" in c.value for c in at.code)


def test_queue_page_when_nothing_was_submitted_even_on_an_empty_store(url):
    open_store(url)
    at = app("Queue")
    assert_common(at)
    assert "No submissions yet." in [i.value for i in at.info]
    assert any("imhi-bench worker --drain" in c.value for c in at.code)
    assert not at.dataframe


# --------------------------------------------------------------------------- browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"leaderboard exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                        timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"leaderboard did not come up in {timeout} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def served_in_chromium(url: str, tmp_path: Path, viewport: dict):
    """`imhi-bench leaderboard` served on a free local port, and a headless Chromium page of
    `viewport` size: yields (page, port); stops both after."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    log = tmp_path / "leaderboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imhi_bench", "leaderboard", "--db", url,
             "--port", str(port), "--host", "127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        _wait_healthy(port, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )
            try:
                yield browser.new_page(viewport=viewport), port
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _grids(page) -> list[list[list[str]]]:
    """Text of each data grid's accessible table (the canvas mirrors it for screen readers),
    in page order: rows of cells, the header first."""
    return page.eval_on_selector_all(
        '[data-testid="stDataFrame"] table[role="grid"]',
        "grids => grids.map(g => Array.from(g.querySelectorAll('tr')).map("
        "r => Array.from(r.querySelectorAll('th,td')).map(c => c.innerText)))",
    )


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"{CHROMIUM} is absent: apt-get install -y chromium (as .ci/run does)")
def test_served_app_in_a_real_browser(tmp_path, url, seeded):
    for i in range(5):  # more rows than the grid's default 10-row box
        record_run(url, model={"name": f"extra-{i}"}, run={},
                   results=score_json(**all_sets(30.0 + i)))
    # X again, under another protocol (its chat template): never ranked beside the default
    chat = score_json(DR=99.0)
    chat["provenance"]["protocol"] = protocol_json(
        dataclasses.replace(default_protocol(), chat_template=True))
    record_run(url, model={"name": "X"}, run={}, results=chat)
    with served_in_chromium(url, tmp_path, {"width": 1800, "height": 1100}) as (page, port):
        dialogs: list[str] = []  # an injected alert() would land here
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text(NON_CLINICAL_NOTICE).wait_for(timeout=60_000)
        grid = '[data-testid="stDataFrame"] table[role="grid"]'
        # the grid's accessible mirror table is in the DOM but not "visible"
        page.wait_for_selector(f"{grid} td", state="attached", timeout=60_000)
        page.wait_for_function(
            "sel => Array.from(document.querySelectorAll(sel))"
            ".some(td => td.innerText === 'MentaLLaMA-chat-13B')",
            arg=f"{grid} td", timeout=30_000)
        ranked, paper = _grids(page)[:2]
        header = ranked[0]
        by_model = {r[header.index("model")]: r for r in ranked[1:]}
        # the mirror holds raw values (the canvas shows them to 2 decimals): X's
        # default-protocol run is ranked, not its chat-template run (99.0)
        assert float(by_model["X"][header.index("DR")]) == 90.0
        assert set(by_model) == {"X", "tiny-base", *(f"extra-{i}" for i in range(5))}
        assert EVIL not in by_model  # completion prompts: a protocol of its own
        # the paper's rows: beside the ranking, with their own protocol
        pheader = paper[0]
        chat13 = next(r for r in paper[1:] if r[0] == "MentaLLaMA-chat-13B")
        assert float(chat13[pheader.index("DR")]) == 85.68
        assert chat13[pheader.index("protocol")] == \
            "as reported; MentalBERT labels; prompts as IMHI.py"
        # the selector lists the other protocols with their run counts
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first \
            .click()  # the protocol selector
        page.locator('[role="option"]').first.wait_for(timeout=30_000)
        assert page.locator('[role="option"]').all_inner_texts() == [
            "default (8 runs)", "default (completion) (1 run)",
            "default + chat template (1 run)",
            "all protocols (mixed: each row names its protocol)"]
        page.screenshot(path=str(tmp_path / "protocols.png"), full_page=True)
        page.keyboard.press("Escape")
        # every row is on screen: the grid is as tall as its rows, no scroll box
        assert len(ranked) == 8
        box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
        assert box["height"] >= 8 * 35
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)

        # the model page of the hostile name: still text, still the notice
        page.get_by_text("Model", exact=True).click()
        page.get_by_text("Per-set results").wait_for(timeout=30_000)
        name = page.locator('[data-testid="stText"]').filter(has_text=EVIL).first
        name.wait_for(timeout=30_000)
        assert name.inner_text() == EVIL  # verbatim, not rendered
        page.get_by_text(NON_CLINICAL_NOTICE).wait_for()
        page.get_by_text("<script>alert(0)</script> **yes**").first.wait_for()
        assert page.locator("strong", has_text="bold").count() == 0
        assert page.locator("img[src='x']").count() == 0
        page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
        assert dialogs == []
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000


def seed_wide(url: str) -> None:
    """The paper rows, and runs that scored all 8 ranked sets, one with a long name."""
    load_reported(open_store(url))
    # the long name sorts first: the model page opens on it
    names = ["A-long-name-MentaLLaMA-chat-13B-reproduced-on-our-own-hardware", "X", "tiny-base",
             *(f"extra-{i}" for i in range(4))]
    for i, name in enumerate(names):
        results = score_json(**all_sets(40.0 + 3.33333 * i))
        mean = results["mean"]["weighted_f1"]
        results["mean"]["weighted_f1_ci"] = [mean - 1.5, mean + 1.5]  # as eval stores it
        record_run(url, model={"name": name, "type": "fine-tuned", "params": "13B",
                               "training_data": "IMHI"}, run={}, results=results)


def _ranked_grid_on_screen(page, screenshot: Path) -> list[list[str]]:
    """The ranked grid's cells, once its columns settle, after checking it starts rank,
    model, band, mean, the 8 ranked sets, and that nothing of it is off to the side."""
    page.wait_for_timeout(1500)  # the canvas settles its column widths
    page.screenshot(path=str(screenshot), full_page=True)
    ranked = _grids(page)[0]
    assert ranked[0][:4] == ["rank", "model", "band", "mean"]
    assert ranked[0][4:12] == list(data.RANKED_SETS)
    widths = page.eval_on_selector('[data-testid="stDataFrame"] .dvn-scroller',
                                   "el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1], widths
    return ranked


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"{CHROMIUM} is absent: apt-get install -y chromium (as .ci/run does)")
@pytest.mark.parametrize("width", [1366, 1920])
def test_ranked_table_fits_a_laptop_screen(tmp_path, url, width):
    """Rank, model, band, mean, the 8 ranked sets and the badges, with the sidebar open:
    nothing off to the side on a 1366 px laptop screen (nor at 1920)."""
    seed_wide(url)
    with served_in_chromium(url, tmp_path, {"width": width, "height": 900}) as (page, port):
        page.goto(f"http://127.0.0.1:{port}/")
        grid = '[data-testid="stDataFrame"] table[role="grid"]'
        page.wait_for_selector(f"{grid} td", state="attached", timeout=60_000)
        ranked = _ranked_grid_on_screen(page, tmp_path / f"leaderboard-{width}.png")
        header = ranked[0]
        assert header[12] == data.ABOUT_COLUMN and len(header) == 13
        ranks = [r[0] for r in ranked[1:]]
        assert ranks == [str(i) for i in range(1, 8)]
        # the mirror holds the stored values; the canvas draws one decimal (the screenshot)
        assert ranked[2][header.index("mean")] == "60.17"  # drawn as 60.2

        # the model page opens with the mean, its CI, the rank and the chart; the run's
        # fields wait in an expander
        page.get_by_text("Model", exact=True).click()
        page.get_by_text("Per-set results").wait_for(timeout=30_000)
        long_name = "A-long-name-MentaLLaMA-chat-13B-reproduced-on-our-own-hardware"
        page.get_by_text(long_name, exact=True).wait_for(timeout=30_000)  # whole, as text
        page.wait_for_timeout(1500)
        page.screenshot(path=str(tmp_path / f"model-{width}.png"), full_page=True)
        metrics = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
        assert metrics == ["43.5", "7 of 7"]  # the stored mean; last of the 7 ranked
        assert page.get_by_text("95% CI 42.0–45.0 over 8 sets").count() == 1
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=30_000)
        fields = page.get_by_text("The run's fields (path, ids, times, ...)")
        assert fields.is_visible()


def seed_wide_mixed(url: str) -> None:
    """`seed_wide`, and X again under another protocol (its chat template), all 8 sets."""
    seed_wide(url)
    chat = score_json(**all_sets(55.0))
    chat["provenance"]["protocol"] = protocol_json(
        dataclasses.replace(default_protocol(), chat_template=True))
    record_run(url, model={"name": "X"}, run={}, results=chat)


def test_mixed_view_column_widths_fit_the_grid(url):
    """Every column of the first view has a width, together GRID_PX at most, with all
    protocols mixed too: model, badges and protocol share what the fixed columns leave,
    each at least its minimum; the default view's widths are as before the protocol shared."""
    seed_wide_mixed(url)
    engine = store_engine(open_store(url))
    fixed = sum(widgets.NARROW_PX.values()) + widgets.SET_PX * len(data.RANKED_SETS)
    for protocol, extra in ((DEFAULT_ID, []), (data.ALL_PROTOCOLS, ["protocol"])):
        view = data.default_view(engine, protocol)
        assert list(view.columns)[12:] == [data.ABOUT_COLUMN, *extra]
        config = widgets.column_config(view)
        widths = {c: config[c]["width"] for c in view.columns}
        assert all(isinstance(w, int) for w in widths.values()), widths
        # the long name (and, mixed, the paper's protocol) want more than is left: all of it
        assert sum(widths.values()) == widgets.GRID_PX, widths
        assert widths[data.ABOUT_COLUMN] == widgets.ABOUT_PX
        # the name is served first: all but the minimums of the columns after it
        assert widths["model"] == widgets.GRID_PX - fixed - sum(
            widgets.SHARED[c] for c in (data.ABOUT_COLUMN, *extra))
    assert widths["protocol"] == widgets.PROTOCOL_PX
    assert widths["model"] > widgets.MODEL_PX
    # short names keep their minimums: what the name leaves goes to the badges
    short = view[view["protocol"] == "default"].assign(model="X")
    config = widgets.column_config(short)
    assert config["model"]["width"] == widgets.MODEL_PX
    assert config["protocol"]["width"] == widgets.PROTOCOL_PX  # "default" is under 80 px
    assert config[data.ABOUT_COLUMN]["width"] == \
        widgets.GRID_PX - fixed - widgets.MODEL_PX - widgets.PROTOCOL_PX
    # the paper's table beside the default ranking keeps its protocol at its own width
    paper = protocols.reported_table(data.load_runs(engine), data.load_scores(engine))
    assert widgets.column_config(paper, shared=("model",))["protocol"]["width"] is None


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"{CHROMIUM} is absent: apt-get install -y chromium (as .ci/run does)")
@pytest.mark.parametrize("width", [1366, 1920])
def test_mixed_protocols_table_fits_a_laptop_screen(tmp_path, url, width):
    """'all protocols' chosen: the protocol column beside rank, model, band, mean, the 8
    ranked sets and the badges, and still nothing off to the side at 1366 px (nor 1920)."""
    seed_wide_mixed(url)
    with served_in_chromium(url, tmp_path, {"width": width, "height": 900}) as (page, port):
        page.goto(f"http://127.0.0.1:{port}/")
        grid = '[data-testid="stDataFrame"] table[role="grid"]'
        page.wait_for_selector(f"{grid} td", state="attached", timeout=60_000)
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first \
            .click()  # the protocol selector
        page.locator('[role="option"]', has_text="all protocols").click()
        page.wait_for_function(
            "sel => Array.from(document.querySelectorAll(sel))"
            ".some(th => th.innerText === 'protocol')",
            arg=f"{grid} th", timeout=30_000)
        ranked = _ranked_grid_on_screen(page, tmp_path / f"mixed-{width}.png")
        header = ranked[0]
        assert header[12:] == [data.ABOUT_COLUMN, "protocol"]
        # the mirror holds whole names, however narrow the column draws them
        assert {r[header.index("protocol")] for r in ranked[1:]} == {
            "default", "default + chat template", REPORTED_NAME}
