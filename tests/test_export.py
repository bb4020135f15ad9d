"""`imhi-bench export RUN --model-index`: the block loads with huggingface_hub's model-card
parser (offline), with one result per set and the mean, and the protocol in the source."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.main import main
from imhi_bench.runs.folder import RESULTS_FILE
from imhi_bench.scoring.protocol import default_protocol, protocol_json
from imhi_bench.store.record import record_run
from imhi_bench.store.reported import load_reported

ROWS = {"DR": 405, "SAD": 684}


def report(n: dict[str, int], limit: int | None = None) -> dict:
    sets = {name: {"n": k, "weighted_f1": 60.0 + i, "accuracy": 61.5 + i,
                   "macro_f1": 55.25 + i, "unparseable": 0}
            for i, (name, k) in enumerate(n.items())}
    mean = {"sets": len(sets), "n": sum(n.values()), "weighted_f1": 60.5, "accuracy": 62.0,
            "macro_f1": 55.75, "unparseable": 0}
    prov = {"name": "tiny-llama", "model": "/models/tiny-llama", "limit": limit,
            "protocol": protocol_json(default_protocol()),
            "sets": {name: {"format": "instruction", "rows": ROWS[name],
                            "complete": k == ROWS[name]} for name, k in n.items()}}
    return {"sets": sets, "mean": mean, "provenance": prov}


def export(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["export", *args, "--model-index"])
    out, err = capsys.readouterr()
    return rc, out, err


def card_results(text: str, tmp_path) -> list:
    """The block as the Hub reads it: ModelCard, metadata_load and the eval results."""
    card = ModelCard(text + "\n# tiny-llama\n")
    (tmp_path / "README.md").write_text(text, "utf-8")
    meta = metadata_load(tmp_path / "README.md")
    name, results = model_index_to_eval_results(meta["model-index"])
    assert [(r.dataset_name, r.metric_name, r.metric_value) for r in card.data.eval_results] \
        == [(r.dataset_name, r.metric_name, r.metric_value) for r in results]
    return name, results


def test_a_run_folder_exports_a_block_the_hub_parser_reads(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    rep = report(ROWS)
    (folder / RESULTS_FILE).write_text(json.dumps(rep), "utf-8")
    rc, out, err = export(capsys, str(folder))
    assert rc == 0, err
    assert out.startswith("---\n") and out.endswith("---\n") and NON_CLINICAL_NOTICE in out
    name, results = card_results(out, tmp_path)
    assert name == "tiny-llama"
    got = {(r.dataset_name, r.metric_name): r.metric_value for r in results}
    for s, m in rep["sets"].items():
        assert got[(f"IMHI {s}", "Weighted F1")] == m["weighted_f1"]
        assert got[(f"IMHI {s}", "Accuracy")] == m["accuracy"]
        assert got[(f"IMHI {s}", "Macro F1")] == m["macro_f1"]
    assert got[("IMHI (mean of 2 sets)", "Weighted F1")] == rep["mean"]["weighted_f1"]
    assert len(results) == 9
    protocol = rep["provenance"]["protocol"]
    for r in results:
        assert r.task_type == "text-generation" and r.dataset_type == "imhi"
        assert r.dataset_split == "test" and r.verified is False
        assert f"protocol {protocol['id']} ({protocol['name']})" in r.source_name
        assert r.source_url.startswith("https://")
    # --name renames the model; the same block from the folder's JSON file itself
    rc, again, _ = export(capsys, str(folder / RESULTS_FILE), "--name", "my-model")
    assert rc == 0 and card_results(again, tmp_path)[0] == "my-model"


def test_a_partial_run_is_refused_unless_said_so(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RESULTS_FILE).write_text(json.dumps(report({"DR": 2}, limit=2)), "utf-8")
    rc, out, err = export(capsys, str(folder))
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "partial run (--limit 2)" in err and "--partial" in err
    rc, out, _ = export(capsys, str(folder), "--partial")
    assert rc == 0
    _, results = card_results(out, tmp_path)
    assert all("partial run (--limit 2)" in r.source_name for r in results)


def test_store_runs_and_the_paper_s_rows_export(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rep = report(ROWS)
    run_id = record_run(url, model={"name": "stored-model"}, run={}, results=rep)
    rc, out, err = export(capsys, str(run_id), "--db", url)
    assert rc == 0, err
    name, results = card_results(out, tmp_path)
    assert name == "stored-model"
    got = {(r.dataset_name, r.metric_name): r.metric_value for r in results}
    assert got[("IMHI SAD", "Weighted F1")] == rep["sets"]["SAD"]["weighted_f1"]
    assert all(f"protocol {rep['provenance']['protocol']['id']}" in r.source_name
               for r in results)
    load_reported(url)
    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Model, Run

    with open_store(url)() as s:
        paper = s.query(Run).join(Model).filter(Run.source == "reported",
                                                Model.name == "MentalRoBERTa").one().id
    rc, out, err = export(capsys, f"run:{paper}", "--db", url)
    assert rc == 0, err
    _, results = card_results(out, tmp_path)
    assert all("MentaLLaMA" in r.source_name and "arxiv.org" in r.source_url
               and "; protocol " in r.source_name for r in results)
    assert {(r.dataset_name, r.metric_value) for r in results
            if r.metric_name == "Weighted F1"} >= {("IMHI DR", 94.23)}


@pytest.mark.parametrize("args,message", [
    (["/nope/run"], "no such run folder"),
    (["999", "--db", "{url}"], "no run 999 in the store"),
])
def test_bad_runs_are_one_line(tmp_path, capsys, args, message):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rc, out, err = export(capsys, *[a.format(url=url) for a in args])
    assert rc == 2 and out == "" and err.count("\n") == 1 and message in err
