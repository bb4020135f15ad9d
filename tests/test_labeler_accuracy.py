"""The labeler really works: MiniLM fine-tuned here reaches >= 90% held-out accuracy on DR
and SAD explanations with the label sentence removed.

This is the one slow file of the labeler (about 3.5 min on the 2-core dev box to train).  To keep it
there it trains one epoch on a seeded subsample (DR 600 train rows, SAD 800; each row twice,
with and without its label sentence) at 64 tokens with frozen word embeddings, one torch
thread.  Measured on the dev box (torch 2.13 CPU): DR 93.49% (215 held-out rows, 99 s),
SAD 93.83% (308 held-out rows, 114 s); with the label sentence kept, 100% on both.
The majority-class baselines are 78.6% (DR) and 13.0% (SAD).
"""

from __future__ import annotations

import pytest
from tiny_models import minilm_dir, torch_threads

from imhi_bench.scoring.labeler.agreement import after_options, agreement, label_stripped
from imhi_bench.scoring.labeler.load import load_labeler, predict_ids
from imhi_bench.scoring.labeler.train import TrainOptions, train_labeler


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm-labeler")
    results = {}
    with torch_threads(1):
        for name, rows in (("DR", 600), ("SAD", 800)):
            opts = TrainOptions(epochs=1, max_length=64, batch_size=16, lr=1e-4,
                                max_train=rows, freeze_embeddings=True, progress=False)
            results.update(train_labeler(str(minilm_dir()), out, [name], opts,
                                         log=lambda _: None)["sets"])
    return out, results


@pytest.mark.parametrize("name", ["DR", "SAD"])
def test_minilm_labeler_reaches_90_percent_held_out(trained, name):
    _, results = trained
    r = results[name]
    print(f"{name}: held-out {r['test_accuracy']}% without label sentence, "
          f"{r['test_accuracy_with_label']}% with (n={r['test']})")
    assert r["test"] >= 200
    assert r["test_accuracy"] >= 90.0
    assert r["test_accuracy_with_label"] >= r["test_accuracy"]


def test_saved_minilm_labeler_reads_free_text(trained):
    out, _ = trained
    lab = load_labeler(out)
    assert lab.sets == ("DR", "SAD")
    with torch_threads(1):
        got = lab.predict("SAD", [
            "Reasoning: The poster is worried about paying rent and their growing credit card "
            "debt, and says they cannot afford groceries this month.",
            "Reasoning: The poster describes failing an exam, a pile of homework and pressure "
            "from their teachers about their grades.",
        ])
        dr = lab.predict("DR", [
            "Reasoning: The poster talks about a fun weekend trip with friends and looks "
            "forward to starting a new job; nothing suggests low mood.",
        ])
    assert got == ["financial problem", "school"]
    assert dr == ["no"]


def test_an_unchosen_option_list_does_not_sway_the_labeler(trained):
    """Issue 23 (`labeler agree`): the label-stripped test explanations, also after an option
    list that chooses nothing and never lists the stated class first.  The labeler reads
    them as the plain explanations (the list cut out, `labeler_text`); read whole, as
    before, the classifier is swayed by the list."""
    out, _ = trained
    lab = load_labeler(out)
    lab.progress = False
    report = {}
    with torch_threads(1):
        rows = agreement(lab, ["DR", "SAD"])
        for name in ("DR", "SAD"):
            plain = rows[f"{name} label-stripped"]
            listed = rows[f"{name} label-stripped after an option list"]
            assert listed == plain
            texts = after_options(label_stripped(name))
            model, tokenizer, classes, limit = lab._load(name)
            whole = [classes[i] for i in predict_ids(model, tokenizer, texts.texts,
                                                     max_length=limit)]
            swayed = 100.0 * sum(w == s for w, s in zip(whole, texts.stated)) / len(whole)
            report[name] = (plain["classifier"], round(swayed, 2))
    print("classifier on explanations after an unchosen option list, cut vs whole:", report)
    # the list, read whole, costs the classifier (it leans to the option written first)
    assert all(swayed < cut - 5 for cut, swayed in report.values())
