"""Explicit answers first (issue 16): with a classifier labeler, an answer the response states
as such (a chosen option, an answer slot) is read by the rules, the classifier reads the
rest, and the score JSON, the samples and the report say how many each decided."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import build_tiny_bert_classifier, torch_threads

from imhi_bench.scoring.labeler.explicit import read_labels
from imhi_bench.scoring.labels.reader import explicit_label
from imhi_bench.scoring.pipeline import SetInput, score_run
from imhi_bench.scoring.quality.config import QualityConfig
from imhi_bench.scoring.report import score_table

GOLD_NO = "No, the poster does not suffer from depression. Reasoning: the post is calm."
GOLD_YES = "Yes, the poster suffers from depression. Reasoning: the poster feels empty."
# Explicit answers, all "no", in shapes the gold-trained classifier never saw.
EXPLICIT_NO = [
    "A) Yes B) No\nCorrect answer: B",  # a chosen option, resolved through the written list
    "(A) Yes (B) No. The answer is (B) No.",
    "No. The poster talks about a holiday and feels fine.",  # an answer slot
]
# No explicit answer: free text only, the classifier's to read.
FREE_TEXT = [
    "The poster describes a fun weekend trip with friends.",
    "Reasoning: nothing in the post suggests low mood.",
]


class ForcedLabeler:
    """A labeler stand-in that always says `label` and records what it was asked."""

    def __init__(self, label: str, sets=("DR",)):
        self.label, self.sets, self.name = label, tuple(sets), f"classifier:forced-{label}"
        self.seen: list[str] = []

    def predict(self, set_name, texts):
        self.seen += list(texts)
        return [self.label] * len(texts)


def test_explicit_label_is_only_an_answer_slot_or_a_chosen_option():
    assert [explicit_label("DR", t) for t in EXPLICIT_NO] == ["no"] * 3
    assert explicit_label("SAD", "A) School B) Work\nAnswer: B") == "work"
    assert explicit_label("SAD", "Answer: work. Reasoning: the boss.") == "work"
    # free text the rules can read, but not an explicit answer: the classifier's
    assert explicit_label("DR", FREE_TEXT[1]) is None
    assert explicit_label("SAD", "Reasoning: the poster fears their boss. Therefore the "
                                 "label is work.") is None
    assert explicit_label("DR", "") is None and explicit_label("DR", None) is None


def test_rules_decide_explicit_answers_and_the_classifier_reads_the_rest():
    lab = ForcedLabeler("yes")
    reading = read_labels(lab, "dr", EXPLICIT_NO + FREE_TEXT + [None])
    assert reading.labels == ["no"] * 3 + ["yes"] * 3
    assert reading.by_rules == [True] * 3 + [False] * 3
    assert (reading.rules_decided, reading.classifier_decided) == (3, 3)
    assert [reading.source(i) for i in (0, 5)] == ["rules", "classifier"]
    # one predict call, on the undecided texts only (None read as "")
    assert lab.seen == FREE_TEXT + [""]
    lab.seen.clear()
    assert read_labels(lab, "DR", EXPLICIT_NO).labels == ["no"] * 3 and lab.seen == []


@pytest.fixture(scope="module")
def yes_labeler(tmp_path_factory):
    """A real (tiny) classifier folder whose DR classifier says "yes" whatever it reads."""
    from transformers import AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("labeler")
    folder = build_tiny_bert_classifier(root / "DR", 2, id2label={0: "no", 1: "yes"})
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 5.0]))
    model.save_pretrained(folder)
    return root


def _rows(gens: list[str]) -> list[tuple[int, str, str, None]]:
    golds = [GOLD_NO] * len(gens)
    return [(i, g, gen, None) for i, (g, gen) in enumerate(zip(golds, gens))]


def test_score_json_samples_and_report_say_who_decided(yes_labeler):
    gens = EXPLICIT_NO + FREE_TEXT
    inputs = {"DR": SetInput(_rows(gens), {"format": "instruction"}),
              "SAD": SetInput([(0, "This post shows the stress cause related to work.",
                                "work", None)], {"format": "instruction"})}
    quality = QualityConfig(metrics=[], labeler_dir=str(yes_labeler), progress=False)
    with torch_threads(1):
        scored = score_run(inputs, {"source": "test"}, n_boot=0, quality=quality)
    report = json.loads(json.dumps(scored.report))
    dr, sad = report["sets"]["DR"], report["sets"]["SAD"]
    # the forced "yes" classifier only read the free text; the rules read the explicit "no"s
    assert [s.label for s in scored.samples["DR"]] == ["no"] * 3 + ["yes"] * 2
    assert [s.extra["label_by"] for s in scored.samples["DR"]] == \
        ["rules"] * 3 + ["classifier"] * 2
    assert dr["accuracy"] == pytest.approx(60.0)
    # the labeler field keeps its meaning (the classifier's name); counts are new fields
    assert dr["labeler"].startswith("classifier:")
    assert (dr["labels_by_rules"], dr["labels_by_classifier"]) == (3, 2)
    # consistency reads explanations the same way: the "No." slot has no Reasoning:
    # marker, so it is still in its explanation; the option lists have no marker either
    assert (dr["consistency_by_rules"], dr["consistency_by_classifier"]) == (3, 2)
    # the explicit "no"s agree (rules on both sides); the rules read no class in the free
    # text, and an unreadable rule label never agrees
    assert dr["consistency"] == pytest.approx(0.6)
    assert [s.extra["classifier_label_by"] for s in scored.samples["DR"]] == \
        ["rules"] * 3 + ["classifier"] * 2
    # a set the labeler does not cover: rules, no counts
    assert sad["labeler"] == "rules" and "labels_by_rules" not in sad
    assert "consistency_by_rules" not in sad
    table = score_table(report)
    assert "rules decided 3 explicit answers, 3 in explanations" in table
    assert table.splitlines()[3].split()[-1] == "rules"  # SAD's row


def test_consistency_reads_explanations_without_their_label_sentence(yes_labeler):
    """A Reasoning: marker splits the stated label off: the explanation alone is read, by
    the classifier when it states no explicit answer."""
    gens = ["No. Reasoning: the poster feels hopeless and empty every day.",
            "No. Reasoning: Answer: yes, the poster is depressed."]
    quality = QualityConfig(metrics=[], labeler_dir=str(yes_labeler), progress=False)
    with torch_threads(1):
        res = quality.score_set("DR", gens, [GOLD_NO, GOLD_NO])
    assert res.classifier_labels == ["yes", "yes"]
    assert res.classifier_by_rules == [False, True]
    assert res.consistency == 0.0  # the stated "no"s disagree with both explanations
    assert set(res.to_json()) == {"consistency"}  # counts are not quality means


def test_labels_without_a_labeler_carry_no_counts():
    scored = score_run({"DR": SetInput(_rows([GOLD_YES]), {})}, {}, n_boot=0)
    dr = scored.report["sets"]["DR"]
    assert dr["labeler"] == "rules" and "labels_by_rules" not in dr
    assert "label_by" not in scored.samples["DR"][0].extra
    assert "(" not in score_table(scored.report).splitlines()[2]


def test_cli_agree_measures_both_readings(yes_labeler, tmp_path, monkeypatch, capsys):
    """`labeler agree`: label-stripped explanations and DR_annotation, read by the rules, the
    classifier alone and explicit answers first (the forced "yes" classifier makes the
    numbers predictable)."""
    from imhi_bench.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("imhi_bench.cli.labeler",))
    out = tmp_path / "agree.json"
    with torch_threads(1):
        assert cli.main(["labeler", "agree", str(yes_labeler), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "explicit first = rules" in text and "non-clinical" in text
    rows = json.loads(out.read_text())["texts"]
    assert list(rows) == ["DR label-stripped", "DR label-stripped after an option list",
                          "DR_annotation/chatgpt_data",
                          "DR_annotation/chatgpt_false_data", "DR_annotation/gpt3_data"]
    stripped = rows["DR label-stripped"]
    assert stripped["n"] == 405 and stripped["rules"] == 91.6  # as test_labels measures
    assert stripped["classifier"] == pytest.approx(100 * 307 / 405, abs=0.01)  # the yes rows
    # an option list that chooses nothing changes no reader's reading (issue 23)
    assert rows["DR label-stripped after an option list"] == stripped
    chatgpt = rows["DR_annotation/chatgpt_data"]
    assert chatgpt["n"] == 121 and chatgpt["rules"] == 100.0
    assert rows["DR_annotation/chatgpt_false_data"]["n"] == 43
    for r in rows.values():
        # explicit-first differs from the classifier alone only where the rules decided
        assert r["explicit_first_vs_rules"] >= r["classifier_vs_rules"]
        if r["rules_decided"] == 0:
            assert r["explicit_first"] == r["classifier"]


def test_a_first_sentence_of_prose_is_not_an_explicit_answer():
    """The answer-slot rule also takes a first sentence like "The poster is ...": that is
    prose, the classifier's to read; before a Reasoning: marker it is a stated answer."""
    prose = "The poster is expressing a stressful situation at work."
    assert explicit_label("dreaddit", prose) is None
    assert explicit_label("dreaddit", "The poster is stressed. Reasoning: deadlines.") == "yes"
    assert explicit_label("DR", "This post shows no signs of depression.") == "no"
