"""Where a model errs: per-class F1 and the confusion matrix (`scoring.confusion`) against
scikit-learn, in the score JSON of `imhi-bench score`, and on the leaderboard's model page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from imhi_bench.benchmark.data import load_examples
from imhi_bench.benchmark.sets import SETS
from imhi_bench.cli.main import main
from imhi_bench.scoring.confusion import UNREADABLE, error_profile
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.scoring.labels.schema import label_sentence
from tests.test_score import _write_imhi_py


@pytest.mark.parametrize("name", ["DR", "SAD", "t-sid"])
def test_error_profile_matches_sklearn(name):
    rng = np.random.default_rng(4)
    classes = list(SETS[name].classes)
    gold = [classes[i] for i in rng.integers(0, len(classes), 300)]
    options = classes + [None]
    pred = [g if rng.random() < 0.6 else options[rng.integers(len(options))] for g in gold]
    got = error_profile(name, gold, pred)

    read = [UNREADABLE if p is None else p for p in pred]
    conf = got["confusion"]
    assert conf["gold"] == classes and conf["read"] == classes + [UNREADABLE]
    want = confusion_matrix(gold, read, labels=classes + [UNREADABLE])[:len(classes)]
    assert conf["counts"] == want.tolist()
    p, r, f, s = precision_recall_fscore_support(gold, read, labels=classes, zero_division=0)
    for i, c in enumerate(classes):
        m = got["per_class"][c]
        assert (m["precision"], m["recall"], m["f1"], m["support"]) == pytest.approx(
            (100 * p[i], 100 * r[i], 100 * f[i], s[i]), abs=0.006)


def _folder_with_errors(imhi_dir, dest, n=60):
    """DR: every fifth answer unreadable, every seventh the other class; SAD: every third
    answer names the next class."""
    dest.mkdir()
    for name, wrong in (("DR", 7), ("SAD", 3)):
        ex = load_examples(name, "instruction", imhi_dir)[:n]
        classes = SETS[name].classes
        gens = []
        for i, e in enumerate(ex):
            cls = gold_label(name, e.gold)
            if name == "DR" and i % 5 == 0:
                gens.append("I would rather not say anything about this post.")
            elif i % wrong == 0:
                other = classes[(classes.index(cls) + 1) % len(classes)]
                gens.append(label_sentence(name, other) + " Reasoning: the post says so.")
            else:
                gens.append(e.gold)
        _write_imhi_py(dest / f"{name}.csv", [e.gold for e in ex], gens)
    return dest


def test_score_json_holds_per_class_f1_and_the_confusion_matrix(imhi_dir, tmp_path, capsys):
    preds = _folder_with_errors(imhi_dir, tmp_path / "preds")
    out = tmp_path / "r.json"
    assert main(["score", "--predictions", str(preds), "--json", str(out), "--no-db",
                 "--bootstrap", "0"]) == 0
    report = json.loads(out.read_text())
    for m in report["sets"].values():
        conf, per_class = m["confusion"], m["per_class"]
        counts = np.array(conf["counts"])
        assert counts.sum() == m["n"]
        assert conf["read"][-1] == UNREADABLE and counts[:, -1].sum() == m["unparseable"]
        hits = sum(counts[i, conf["read"].index(g)] for i, g in enumerate(conf["gold"]))
        assert 100 * hits / m["n"] == pytest.approx(m["accuracy"], abs=0.01)
        support = {c: v["support"] for c, v in per_class.items()}
        assert sum(support.values()) == m["n"]
        weighted = sum(v["f1"] * v["support"] for v in per_class.values()) / m["n"]
        assert weighted == pytest.approx(m["weighted_f1"], abs=0.02)
    assert report["sets"]["DR"]["unparseable"] == 12  # every fifth of 60
    assert np.array(report["sets"]["SAD"]["confusion"]["counts"]).trace() < 60


def test_model_page_shows_every_sets_confusion_per_class_f1_and_cell_samples(
        imhi_dir, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from imhi_bench.leaderboard import app as app_module

    preds = _folder_with_errors(imhi_dir, tmp_path / "preds")
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    monkeypatch.setenv("IMHI_DB_URL", url)
    assert main(["score", "--predictions", str(preds), "--name", "errs", "--db", url,
                 "--bootstrap", "0"]) == 0
    at = AppTest.from_file(app_module.__file__, default_timeout=60).run()
    at.sidebar.radio(key="page").set_value("Model").run()
    assert not at.exception, at.exception
    assert "Where it errs" in [s.value for s in at.subheader]
    confusions = [d.value for d in at.dataframe if d.value.columns[0] == "gold \\ read"]
    per_class = [d.value for d in at.dataframe if list(d.value.columns[:2]) == ["class", "f1"]]
    assert len(confusions) == len(per_class) == 2  # DR and SAD
    dr = confusions[0].set_index("gold \\ read")
    assert list(dr.columns) == ["no", "yes", UNREADABLE]
    assert int(dr[UNREADABLE].sum()) == 12
    # the first off-diagonal cell of DR, then the unreadable answers of the "no" class
    assert next(b for b in at.selectbox if b.label == "Errors of set").value == "DR"
    cell = next(b for b in at.selectbox if b.label.startswith("Cell"))
    assert cell.value.startswith("no -> yes: ")  # the first off-diagonal cell of DR
    unreadable = next(i for i in cell.options if f"-> {UNREADABLE}" in i)
    cell.set_value(unreadable).run()
    assert not at.exception, at.exception
    texts = [t.value for t in at.text]
    shown = [t for t in texts if f"read as {UNREADABLE}" in t]
    assert 1 <= len(shown) <= 3 and all("no label could be read" in t for t in shown)
    codes = [c.value for c in at.code]
    assert "I would rather not say anything about this post." in codes
