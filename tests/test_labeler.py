"""The classifier labeler: splits, loading our and the paper's folders, training, CLI.

The real-accuracy check (MiniLM, DR and SAD >= 90% held-out) is in
test_labeler_accuracy.py; everything here uses tiny local BERTs and runs in seconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import build_tiny_bert_classifier, torch_threads

from imhi_bench.benchmark.sets import SETS
from imhi_bench.cli import main as cli
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.labeler.fit import accuracy, fit_classifier, save_classifier
from imhi_bench.scoring.labeler.load import (
    PAPER_CLASS_NAMES,
    find_classifiers,
    index_classes,
    load_labeler,
    paper_to_canonical,
)
from imhi_bench.scoring.labeler.train import (
    TrainOptions,
    labeler_split,
    train_labeler,
    training_texts,
)
from imhi_bench.scoring.labels.schema import label_sentence


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread is faster and immune to CPU contention (tiny_models)."""
    with torch_threads(1):
        yield


def run_cli(argv: list[str], monkeypatch) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("imhi_bench.cli.labeler",))
    return cli.main(argv)


def test_paper_names_map_to_canonical_by_index():
    for name, s in SETS.items():
        mapping = paper_to_canonical(name)
        assert list(mapping.values()) == list(s.classes)
        assert list(mapping) == list(PAPER_CLASS_NAMES[name])
    assert paper_to_canonical("SAD")["other"] == "other stress causes"
    assert paper_to_canonical("swmh")["bipolar"] == "bipolar disorder"
    assert paper_to_canonical("t-sid")["suicide or self-harm"] == "suicide or self-harm tendency"
    assert paper_to_canonical("t-sid")["no mental disorders (control)"] == "no mental disorders"
    assert paper_to_canonical("CAMS")["alienation"] == "alienation"


def test_index_classes():
    sad = list(SETS["SAD"].classes)
    # Generic names (the paper's released folders): the paper's index order.
    assert index_classes("SAD", {i: f"LABEL_{i}" for i in range(9)}) == sad
    # Our canonical names in another order: names decide.
    shuffled = dict(enumerate(reversed(sad)))
    assert index_classes("SAD", shuffled) == list(reversed(sad))
    # The paper's short names.
    assert index_classes("t-sid", dict(enumerate(PAPER_CLASS_NAMES["t-sid"]))) == list(
        SETS["t-sid"].classes)
    assert index_classes("DR", {"0": "No", "1": "YES"}) == ["no", "yes"]


def test_splits_are_deterministic_and_disjoint():
    dr = labeler_split("DR")
    assert (len(dr.train), len(dr.select), len(dr.test)) == (1003, 215, 215)
    assert labeler_split("dr").test == dr.test
    assert {c for _, c in dr.test} == {"yes", "no"}
    irf = labeler_split("Irf")
    assert (len(irf.train), len(irf.select), len(irf.test)) == (789, 98, 98)
    texts = [t for t, _ in irf.train], [t for t, _ in irf.select], [t for t, _ in irf.test]
    assert not set(texts[0]) & set(texts[2]) and not set(texts[1]) & set(texts[2])
    assert "val.csv only" in irf.how
    with pytest.raises(ImhiError, match="no train data for CAMS.*DR"):
        labeler_split("CAMS")


def test_training_texts_have_both_variants():
    rows = labeler_split("SAD").train[:3]
    out = training_texts("SAD", rows)
    assert len(out) == 6
    for (response, cls), (full, c1), (bare, c2) in zip(rows, out[0::2], out[1::2]):
        assert c1 == c2 == cls
        assert full.startswith(label_sentence("SAD", cls))
        assert not bare.startswith("This post shows") and not bare.startswith("Reasoning")
        assert bare in response


def _force(folder, index: int) -> None:
    """Make a saved tiny classifier always predict `index`."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[index] = 5.0
    model.save_pretrained(folder)


def test_loads_paper_style_folders(tmp_path):
    root = tmp_path / "paper"
    build_tiny_bert_classifier(root / "SAD", 9)  # LABEL_0..LABEL_8
    _force(root / "SAD", 8)
    build_tiny_bert_classifier(root / "t-sid", 4,
                               id2label=dict(enumerate(PAPER_CLASS_NAMES["t-sid"])))
    _force(root / "t-sid", 1)
    build_tiny_bert_classifier(root / "dr", 2)
    (root / "notes").mkdir()
    (root / "README.md").write_text("released classifiers")
    lab = load_labeler(root)
    assert lab.sets == ("DR", "SAD", "t-sid")
    assert lab.name == f"classifier:{root.resolve()}"
    assert lab.predict("SAD", ["I failed my exam", "my boss"]) == ["other stress causes"] * 2
    assert lab.predict("tsid", ["x"]) == ["suicide or self-harm tendency"]
    assert set(lab.predict("DR", ["a", "b", "c"])) <= {"yes", "no"}
    assert lab.predict("DR", []) == []
    with pytest.raises(ImhiError, match="no classifier for CAMS"):
        lab.predict("CAMS", ["x"])


def test_bad_labeler_folders(tmp_path):
    with pytest.raises(ImhiError, match="does not exist"):
        load_labeler(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImhiError, match="no classifier folders"):
        load_labeler(tmp_path / "empty")
    build_tiny_bert_classifier(tmp_path / "wrong" / "SAD", 3)
    with pytest.raises(ImhiError, match="3 outputs but SAD has 9 classes"):
        find_classifiers(tmp_path / "wrong")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    return build_tiny_bert_classifier(tmp_path_factory.mktemp("enc") / "encoder", 2)


def test_train_saves_standard_folders(tiny_encoder, tmp_path):
    out = tmp_path / "lab"
    logs: list[str] = []
    opts = TrainOptions(epochs=2, max_length=32, batch_size=8, lr=1e-3, max_train=40,
                        progress=False)
    result = train_labeler(str(tiny_encoder), out, ["Irf", "SAD"], opts, log=logs.append)
    assert set(result["sets"]) == {"Irf", "SAD"}
    sad = result["sets"]["SAD"]
    assert sad["train_rows"] == 40 and sad["train_examples"] == 80 and sad["test"] == 308
    assert 0 <= sad["test_accuracy"] <= 100 and sad["best_epoch"] in (1, 2)
    assert any("held-out accuracy" in line for line in logs)
    report = json.loads((out / "labeler_report.json").read_text())
    assert report["sets"]["Irf"]["split"].startswith("val.csv only")
    config = json.loads((out / "SAD" / "config.json").read_text())
    assert config["id2label"] == {str(i): c for i, c in enumerate(SETS["SAD"].classes)}
    assert config["label2id"]["other stress causes"] == 8
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers
    lab = load_labeler(out)
    assert lab.sets == ("Irf", "SAD")
    preds = lab.predict("SAD", ["Reasoning: the poster mentions exams and homework."] * 2)
    assert len(preds) == 2 and preds[0] in SETS["SAD"].classes
    # Same seed, same data: same classifier (deterministic training).
    again = train_labeler(str(tiny_encoder), tmp_path / "lab2", ["SAD"], opts, log=logs.append)
    assert again["sets"]["SAD"]["test_accuracy"] == sad["test_accuracy"]


def test_cli_train_and_eval(tiny_encoder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "lab"
    rc = run_cli(["labeler", "train", "--encoder", str(tiny_encoder), "--out", str(out),
                  "--sets", "MultiWD", "--epochs", "1", "--max-length", "24",
                  "--max-train", "16", "--freeze-embeddings"], monkeypatch)
    assert rc == 0
    text = capsys.readouterr().out
    assert "MultiWD" in text and "acc (no label sent.)" in text and "non-clinical" in text
    assert (out / "MultiWD" / "config.json").is_file()
    rc = run_cli(["labeler", "eval", str(out), "--json", str(tmp_path / "e.json")], monkeypatch)
    assert rc == 0
    assert "MultiWD" in capsys.readouterr().out
    assert json.loads((tmp_path / "e.json").read_text())["sets"]["MultiWD"]["test"] == 150


@pytest.mark.parametrize("argv, message", [
    (["--sets", "CAMS"], "no train data for CAMS"),
    (["--sets", "nope"], "unknown IMHI set"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--max-length", "4"], "--max-length must be"),
])
def test_cli_train_errors_write_nothing(tiny_encoder, tmp_path, monkeypatch, capsys, argv, message):
    out = tmp_path / "lab"
    rc = run_cli(["labeler", "train", "--encoder", str(tiny_encoder), "--out", str(out)] + argv,
                 monkeypatch)
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_bad_encoder(tmp_path, monkeypatch, capsys):
    rc = run_cli(["labeler", "train", "--encoder", str(tmp_path / "none"), "--out",
                  str(tmp_path / "o"), "--sets", "DR"], monkeypatch)
    assert rc == 2
    assert "cannot load encoder" in capsys.readouterr().err
    assert not (tmp_path / "o" / "DR").exists()


def test_fit_classifier_on_plain_rows(tiny_encoder, tmp_path):
    """The generic trainer knows nothing of IMHI: plain (text, class) rows in, the best epoch
    kept, a standard folder out (what a discriminative baseline reuses)."""
    from transformers import AutoModelForSequenceClassification

    words = {"calm": "the poster feels calm and happy today",
             "upset": "the poster feels sad and hopeless today"}
    rows = [(f"{words[c]} {i}", c) for i in range(24) for c in ("calm", "upset")]
    epochs: list[tuple[int, float]] = []
    model, tokenizer, best_epoch, best_acc = fit_classifier(
        str(tiny_encoder), ["calm", "upset"], rows, rows[:8], epochs=3, max_length=16,
        batch_size=4, lr=1e-2, progress=False, name="toy",
        on_epoch=lambda e, acc: epochs.append((e, acc)))
    assert [e for e, _ in epochs] == [1, 2, 3]
    # the best epoch is the first with the highest select accuracy, and its weights are kept
    assert (best_epoch, best_acc) == max(epochs, key=lambda p: (p[1], -p[0]))
    assert best_acc == accuracy(model, tokenizer, rows[:8], ["calm", "upset"], max_length=16,
                                batch_size=4) == 100.0
    assert tokenizer.model_max_length == 16
    save_classifier(model, tokenizer, tmp_path / "toy")
    save_classifier(model, tokenizer, tmp_path / "toy")  # replaces the folder whole
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "toy")
    assert saved.config.id2label == {0: "calm", 1: "upset"}
    # one epoch: nothing to select between, the select rows are not scored
    calls: list = []
    _, _, best_epoch, best_acc = fit_classifier(
        str(tiny_encoder), ["calm", "upset"], rows, [], epochs=1, max_length=16,
        batch_size=8, lr=3e-3, progress=False, on_epoch=lambda *a: calls.append(a))
    assert (best_epoch, best_acc, calls) == (1, None, [])


def test_fit_classifier_picks_the_epoch_on_weighted_f1_when_asked(tiny_encoder):
    """A baseline is ranked by weighted F1, so it picks its epoch on it: the score reported
    per epoch and kept is scikit-learn's weighted F1 of the kept weights on the select rows
    (a skewed select set, where accuracy and weighted F1 part)."""
    from sklearn.metrics import f1_score

    from imhi_bench.scoring.labeler.fit import weighted_f1
    from imhi_bench.scoring.labeler.load import predict_ids

    words = {"calm": "the poster feels calm and happy today",
             "upset": "the poster feels sad and hopeless today"}
    rows = [(f"{words[c]} {i}", c) for i in range(12) for c in ("calm", "upset")]
    select = [(f"{words['calm']} x{i}", "calm") for i in range(7)] + [(words["upset"], "upset")]
    scores: list[tuple[int, float]] = []
    model, tokenizer, best_epoch, best = fit_classifier(
        str(tiny_encoder), ["calm", "upset"], rows, select, epochs=2, max_length=16,
        batch_size=4, lr=3e-4, select_by="weighted_f1", progress=False,
        on_epoch=lambda e, f1: scores.append((e, f1)))
    assert (best_epoch, best) == max(scores, key=lambda p: (p[1], -p[0]))
    pred = predict_ids(model, tokenizer, [t for t, _ in select], max_length=16, batch_size=4)
    expected = 100 * f1_score([c for _, c in select], [["calm", "upset"][i] for i in pred],
                              average="weighted", zero_division=0)
    assert best == pytest.approx(expected) == weighted_f1(
        model, tokenizer, select, ["calm", "upset"], max_length=16, batch_size=4)
    if best < 100:  # a model that errs: the two measures give different numbers
        assert best != accuracy(model, tokenizer, select, ["calm", "upset"], max_length=16,
                                batch_size=4)
