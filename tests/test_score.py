"""`imhi-bench score` end to end: gold as generations, IMHI.py folders, bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest

from imhi_bench.benchmark.data import load_examples
from imhi_bench.benchmark.sets import FORMATS, NON_CLINICAL_NOTICE, SETS
from imhi_bench.cli.main import main


def _write_imhi_py(path, golds, gens, *, index=True, labels=None):
    """A file as MentaLLaMA's IMHI.py writes it with pandas: an unnamed index column."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        header = ([""] if index else []) + ["goldens", "generated_text"]
        header += ["labels"] if labels is not None else []
        w.writerow(header)
        for i, (g, t) in enumerate(zip(golds, gens)):
            row = ([i] if index else []) + [g, t]
            row += [labels[i]] if labels is not None else []
            w.writerow(row)


def _gold_folder(root, dest, fmt):
    n = 0
    for s in SETS.values():
        if (root / s.path(fmt)).is_file():
            ex = load_examples(s.name, fmt, root)
            _write_imhi_py(dest / f"{s.name}.csv", [e.gold for e in ex], [e.gold for e in ex])
            n += 1
    return n


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_gold_as_generation_scores_100_on_every_released_set(imhi_dir, tmp_path, fmt, capsys):
    preds = tmp_path / "preds"
    preds.mkdir()
    n_sets = _gold_folder(imhi_dir, preds, fmt)
    assert n_sets == (9 if fmt == "expert" else 8)
    out = tmp_path / "res.json"
    assert main(["score", "--predictions", str(preds), "--json", str(out),
                 "--data-dir", str(imhi_dir)]) == 0
    report = json.loads(out.read_text())
    assert len(report["sets"]) == n_sets
    for name, m in report["sets"].items():
        assert m["weighted_f1"] == 100.0 and m["unparseable"] == 0, name
        assert m["accuracy"] == 100.0 and m["macro_f1"] == 100.0
        assert m["weighted_f1_ci"] == [100.0, 100.0]
        assert m["labeler"] == "rules"
        prov = report["provenance"]["sets"][name]
        assert prov["format"] == fmt and prov["complete"] is True
        assert len(prov["data_sha256"]) == 64
    assert report["mean"]["weighted_f1"] == 100.0 and report["mean"]["sets"] == n_sets
    assert report["notice"] == NON_CLINICAL_NOTICE
    printed = capsys.readouterr().out
    assert "mean (" in printed and NON_CLINICAL_NOTICE in printed


def test_imhi_py_folder_scores_as_is(imhi_dir, tmp_path):
    """Lower-case stems, a pandas index, a labels column and free-form generations."""
    ex = load_examples("SAD", "instruction", imhi_dir)[:40]
    gens = []
    for i, e in enumerate(ex):
        if i % 4 == 0:
            gens.append("")  # an empty generation is unparseable
        elif i % 4 == 1:
            gens.append("Reasoning: " + e.gold.split("Reasoning:", 1)[1])
        else:
            gens.append(e.gold)
    _write_imhi_py(tmp_path / "sad.csv", [e.gold for e in ex], gens, labels=[0] * len(ex))
    dr = load_examples("DR", "instruction", imhi_dir)[:30]
    _write_imhi_py(tmp_path / "DR.csv", [e.gold for e in dr],
                   ["No." if i % 3 else "Yes." for i in range(30)], index=False)
    out = tmp_path / "r.json"
    assert main(["score", "--predictions", str(tmp_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["sets"]) == {"SAD", "DR"}
    sad = report["sets"]["SAD"]
    assert sad["n"] == 40 and sad["unparseable"] == 10
    assert 60 <= sad["accuracy"] <= 75
    assert report["provenance"]["sets"]["SAD"]["complete"] is False
    lo, hi = report["mean"]["weighted_f1_ci"]
    assert lo <= report["mean"]["weighted_f1"] <= hi


def test_single_csv_file_and_bootstrap_off(imhi_dir, tmp_path):
    ex = load_examples("t-sid", "completion", imhi_dir)[:12]
    f = tmp_path / "T-SID.csv"
    _write_imhi_py(f, [e.gold for e in ex], [e.gold for e in ex])
    out = tmp_path / "r.json"
    assert main(["score", "--predictions", str(f), "--json", str(out), "--bootstrap", "0"]) == 0
    report = json.loads(out.read_text())
    assert report["sets"]["t-sid"]["weighted_f1_ci"] is None
    assert report["provenance"]["sets"]["t-sid"]["format"] == "completion"


def _bad(tmp_path, kind):
    d = tmp_path / kind
    d.mkdir()
    if kind == "unknown_set":
        _write_imhi_py(d / "depression.csv", ["yes"], ["yes"])
    elif kind == "missing_columns":
        (d / "DR.csv").write_text("gold,generation\nyes,yes\n")
    elif kind == "empty_file":
        (d / "DR.csv").write_text("")
    elif kind == "undecodable":
        (d / "DR.csv").write_bytes(b"goldens,generated_text\n\xff\xfe yes,no\n")
    elif kind == "no_rows":
        (d / "DR.csv").write_text("goldens,generated_text\n")
    elif kind == "bad_gold":
        _write_imhi_py(d / "SAD.csv", ["The weather is fine."], ["work"])
    elif kind == "empty_folder":
        pass
    return d


@pytest.mark.parametrize(
    "kind,message",
    [
        ("unknown_set", "must be an IMHI set name"),
        ("missing_columns", "lacks column(s) 'goldens', 'generated_text'"),
        ("empty_file", "is empty"),
        ("undecodable", "not UTF-8"),
        ("no_rows", "no rows"),
        ("bad_gold", "row 1"),
        ("empty_folder", "holds no prediction files"),
    ],
)
def test_bad_inputs_give_one_line_errors_and_write_nothing(tmp_path, capsys, kind, message):
    d = _bad(tmp_path, kind)
    out = tmp_path / "out.json"
    assert main(["score", "--predictions", str(d), "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imhi-bench: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))


def test_console_script_exit_code_and_missing_path(tmp_path):
    exe = shutil.which("imhi-bench") or f"{sys.executable} -m imhi_bench"
    r = subprocess.run(f"{exe} score --predictions {tmp_path / 'nope'}", shell=True,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr


def test_quality_and_labeler_on_score(imhi_dir, tmp_path):
    """--quality adds per-set means (and per-sample values in the store); --labeler reads
    the labels of the sets it covers, says so, and adds the consistency check."""
    from tiny_models import build_tiny_bert_classifier, tiny_bart_dir, torch_threads

    ex = load_examples("DR", "instruction", imhi_dir)[:16]
    sad = load_examples("SAD", "instruction", imhi_dir)[:8]
    preds = tmp_path / "preds"
    preds.mkdir()
    _write_imhi_py(preds / "DR.csv", [e.gold for e in ex], [e.gold for e in ex])
    _write_imhi_py(preds / "SAD.csv", [e.gold for e in sad], [e.gold for e in sad])
    labeler = tmp_path / "labeler"
    build_tiny_bert_classifier(labeler / "DR", 2, id2label={0: "no", 1: "yes"})
    out = tmp_path / "r.json"
    with torch_threads(1):
        rc = main(["score", "--predictions", str(preds), "--json", str(out), "--quality",
                   "bart,rouge", "--bart-model", str(tiny_bart_dir()), "--labeler",
                   str(labeler), "--bootstrap", "0"])
    assert rc == 0
    report = json.loads(out.read_text())
    dr, sad_m = report["sets"]["DR"], report["sets"]["SAD"]
    assert dr["rougeL"] == pytest.approx(1.0) and sad_m["rougeL"] == pytest.approx(1.0)
    assert dr["bart_score"] < 0 and sad_m["bart_score"] < 0
    assert report["mean"]["rougeL"] == pytest.approx(1.0)
    assert dr["labeler"].startswith("classifier:") and sad_m["labeler"] == "rules"
    assert 0.0 <= dr["consistency"] <= 1.0 and "consistency" not in sad_m
    assert sad_m["weighted_f1"] == 100.0  # rules on gold
    assert report["provenance"]["quality"]["metrics"] == ["bart", "rouge"]


def test_bad_quality_options_fail_before_any_work(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["score", "--predictions", str(tmp_path), "--quality", "bleu",
                 "--json", str(out)]) == 2
    assert "bleu" in capsys.readouterr().err
    assert main(["score", "--predictions", str(tmp_path), "--labeler",
                 str(tmp_path / "none"), "--json", str(out)]) == 2
    assert not out.exists()


# --------------------------------------------------------------------------- lm-eval JSONL


def _dr_records(imhi_dir, n=3):
    ex = load_examples("DR", "instruction", imhi_dir)[:n]
    return [{"doc_id": i, "doc": {"gold": e.gold, "set": "DR"}, "resps": [[e.gold]],
             "filtered_resps": [e.gold]} for i, e in enumerate(ex)]


@pytest.mark.parametrize("line, message", [
    (b'{"doc": {"gold": "yes", "set": "DR"}, "resps": [["caf\xe9"]]}',
     "samples_imhi_dr.jsonl:3 is not UTF-8 text (bad byte at column 54)"),
    (b'{"doc": {"gold": "yes"', "samples_imhi_dr.jsonl:3 is not valid JSON"),
    (b'{"doc": {"gold": "yes", "set": 5}}',
     "samples_imhi_dr.jsonl:3: doc.set is 5, not a set name"),
    (b'{"doc": {"gold": "yes", "set": ["DR"]}}',
     'samples_imhi_dr.jsonl:3: doc.set is ["DR"], not a set name'),
    (b'{"doc": {"gold": "yes", "set": "depression"}}',
     "samples_imhi_dr.jsonl:3: unknown IMHI set 'depression' in doc.set"),
    (b'{"doc": "DR"}', 'samples_imhi_dr.jsonl:3: "doc" is a JSON string, not an object'),
    (b'["DR", "yes"]', "samples_imhi_dr.jsonl:3 is a JSON array, not an lm-eval sample"),
    (b'{"doc": {"gold": 1}}', "samples_imhi_dr.jsonl:3 has no gold response"),
    (b'{"doc": {"gold": "yes"}, "doc_id": "seven"}',
     "samples_imhi_dr.jsonl:3: doc_id 'seven' is not an integer"),
])
def test_bad_lm_eval_sample_lines_name_file_and_line(imhi_dir, tmp_path, capsys, line, message):
    folder = tmp_path / "run"
    folder.mkdir()
    good = "".join(json.dumps(r) + "\n" for r in _dr_records(imhi_dir, 2)).encode()
    (folder / "samples_imhi_dr.jsonl").write_bytes(good + line + b"\n")
    out = tmp_path / "r.json"
    assert main(["score", "--predictions", str(folder), "--json", str(out), "--name", "m",
                 "--db", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    [only] = err.strip().splitlines()
    assert only.startswith("imhi-bench: error: ") and message in only, only
    assert "Traceback" not in err and not out.exists()


def _runs_in(db) -> int:
    from sqlalchemy import func, select

    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run

    factory = open_store(str(db))
    with factory() as s:
        return s.scalar(select(func.count()).select_from(Run))


@pytest.fixture
def dr_preds(imhi_dir, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    ex = load_examples("DR", "instruction", imhi_dir)[:8]
    _write_imhi_py(preds / "DR.csv", [e.gold for e in ex], [e.gold for e in ex])
    return preds


@pytest.mark.parametrize("where, message", [
    ("plain/out.json", "plain is a file, not a folder"),
    ("plain/deeper/out.json", "plain is a file, not a folder"),
    ("/proc/imhi-out.json", "cannot create files in /proc"),
    ("folder", "is a folder: pass a file path"),
    ("/dev/null", "is not a regular file"),
])
def test_an_unwritable_json_path_fails_before_anything_is_recorded(dr_preds, tmp_path, capsys,
                                                                  where, message):
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "folder").mkdir()
    target = where if where.startswith("/") else str(tmp_path / where)
    db = tmp_path / "s.sqlite"
    assert main(["score", "--predictions", str(dr_preds), "--name", "m", "--db", str(db),
                 "--json", target]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("imhi-bench: error: --json ") and message in line, line
    assert not db.exists()  # checked before the store was even opened
    assert (tmp_path / "plain").read_text() == "a file"
    assert list((tmp_path / "folder").iterdir()) == []


def test_the_run_is_recorded_with_its_json_or_not_at_all(dr_preds, tmp_path, capsys,
                                                        monkeypatch):
    from imhi_bench.cli import score as score_cli

    db = tmp_path / "s.sqlite"
    out = tmp_path / "new" / "r.json"
    real = score_cli.atomic_write_json

    def full_disk(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(score_cli, "atomic_write_json", full_disk)
    assert main(["score", "--predictions", str(dr_preds), "--name", "m", "--db", str(db),
                 "--json", str(out)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in line and "nothing was recorded" in line
    assert _runs_in(db) == 0 and not out.exists()

    monkeypatch.setattr(score_cli, "atomic_write_json", real)
    assert main(["score", "--predictions", str(dr_preds), "--name", "m", "--db", str(db),
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "recorded as run" in printed
    assert printed.rstrip().endswith(NON_CLINICAL_NOTICE)
    assert _runs_in(db) == 1 and json.loads(out.read_text())["sets"]["DR"]["n"] == 8


def test_a_failed_commit_takes_the_new_json_away(dr_preds, tmp_path, capsys):
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from imhi_bench.core.errors import ImhiError

    def boom(session):
        raise ImhiError("simulated store failure at commit")

    db = tmp_path / "s.sqlite"
    out = tmp_path / "r.json"
    event.listen(Session, "before_commit", boom)
    try:
        rc = main(["score", "--predictions", str(dr_preds), "--name", "m", "--db", str(db),
                   "--json", str(out)])
    finally:
        event.remove(Session, "before_commit", boom)
    assert rc == 2 and "simulated store failure" in capsys.readouterr().err
    assert not out.exists() and _runs_in(db) == 0


@pytest.mark.parametrize("args, message", [
    (["--name", ""], "--name is empty"),
    (["--name", "   "], "--name is empty"),
    (["--name", "x" * 201], "--name is longer than 200 characters"),
    (["--name", "a\nb"], "holds control characters"),
    (["--bootstrap", "-5"], "--bootstrap -5: give 0 (no CI) or more"),
    (["--name", "m", "--db", "nosuch+driver://x"], "unknown database kind"),
])
def test_bad_score_options_write_and_record_nothing(dr_preds, tmp_path, capsys, args, message):
    out = tmp_path / "r.json"
    db = tmp_path / "s.sqlite"
    argv = ["score", "--predictions", str(dr_preds), "--json", str(out)] + args
    if "--db" not in args:
        argv += ["--db", str(db)]
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("imhi-bench: error: ") and message in line, line
    assert not out.exists() and not db.exists()
