"""Label schemas and extraction: gold responses of every released file, free-form text."""

from __future__ import annotations

import json

import pytest

from imhi_bench.benchmark.data import read_csv
from imhi_bench.benchmark.sets import FORMATS, GOLD_COLUMN, QUERY_COLUMN, SETS
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.labels.gold import gold_label, parse_gold
from imhi_bench.scoring.labels.reader import explain_label, explanation, extract_label
from imhi_bench.scoring.labels.schema import label_sentence, schema


def _released_files(root):
    """(set, path) of every released file holding gold responses, in every format."""
    out = []
    for fmt in FORMATS:
        for s in SETS.values():
            p = root / s.path(fmt)
            if p.is_file():
                out.append((s.name, p))
    for s in SETS.values():
        for split in s.train_files.values():
            if (root / split["instruction"]).is_file():
                out.append((s.name, root / split["instruction"]))
    return out


def test_every_released_gold_response_parses_to_its_own_class(imhi_dir):
    files = _released_files(imhi_dir)
    # at least the shared copy's: 8 sets x 2 test formats + 9 expert files + 8 instruction
    # train/val files (the full release adds SWMH's test files and Irf's, MultiWD's train)
    assert len(files) >= 33
    total = 0
    for name, path in files:
        rows = read_csv(path, (QUERY_COLUMN, GOLD_COLUMN))
        seen = set()
        for i, row in enumerate(rows):
            gold = row[GOLD_COLUMN]
            strict = parse_gold(name, gold)
            assert strict in SETS[name].classes, f"{path} row {i + 1}: {gold[:80]!r}"
            assert extract_label(name, gold) == strict, f"{path} row {i + 1}: {gold[:80]!r}"
            seen.add(strict)
        total += len(rows)
        if "test_data" in str(path):
            # every class of the set occurs in its released test file
            assert seen == set(SETS[name].classes), (path, seen)
    assert total > 25_000


@pytest.mark.parametrize("name", sorted(SETS))
def test_schema_classes_match_the_set_registry(name):
    sch = schema(name)
    assert tuple(sch.classes) == SETS[name].classes
    for cls in sch.classes:
        sentence = label_sentence(name, cls)
        assert parse_gold(name, sentence) == cls
        assert extract_label(name, sentence + " Reasoning: the post is short.") == cls


def _explanations(root, name, limit=None):
    rows = read_csv(root / SETS[name].path("instruction"), (QUERY_COLUMN, GOLD_COLUMN))
    return [(parse_gold(name, r[GOLD_COLUMN]), explanation(r[GOLD_COLUMN])) for r in rows[:limit]]


# Measured (issue 16): DR 91.60%, dreaddit 94.20, loneliness 95.27, Irf 88.22, MultiWD
# 92.18, SAD 87.57, CAMS 91.36, t-sid 96.56.  DR's floor sits half a point under: the
# negation rules once cost it two rows (91.11%) unnoticed.  Issue 23 (statements of the
# category, relatives): SAD 91.37, CAMS 91.68, the others unchanged.
STRIPPED_FLOORS = {"DR": 0.915, "dreaddit": 0.93, "loneliness": 0.94, "Irf": 0.87,
                   "MultiWD": 0.91, "SAD": 0.91, "CAMS": 0.91, "t-sid": 0.95}


@pytest.mark.parametrize("name,floor", list(STRIPPED_FLOORS.items()))
def test_reads_label_from_explanation_alone(imhi_dir, name, floor):
    """Real outputs often start with 'Reasoning:' and state the class only in the text: the
    released explanations with their label sentence removed stand in for them."""
    pairs = _explanations(imhi_dir, name)
    hits = sum(extract_label(name, "Reasoning: " + ex) == gold for gold, ex in pairs)
    assert hits / len(pairs) >= floor


def test_reads_chatgpt_free_text_of_dr_annotation(imhi_dir):
    """DR_annotation holds ChatGPT's free-form answers with the gold label: in
    chatgpt_data the answer was right, in chatgpt_false_data it was wrong."""
    ann = imhi_dir / "human_evaluation" / "DR_annotation"
    for fname, flip in (("chatgpt_data.csv", False), ("chatgpt_false_data.csv", True)):
        rows = read_csv(ann / fname, ("text", "label", "gpt-3.5-turbo"))
        expected = [("yes" if (r["label"] == "1") != flip else "no") for r in rows]
        got = [extract_label("DR", r["gpt-3.5-turbo"]) for r in rows]
        agree = sum(g == e for g, e in zip(got, expected)) / len(rows)
        assert agree >= 0.95, (fname, agree)


def test_labeler_agree_without_a_dir_reports_the_rules(imhi_dir, tmp_path, monkeypatch, capsys):
    """`imhi-bench labeler agree` with no classifier folder, as README runs it for the rules'
    figures: every set whose test file is present, at least the floors above."""
    from imhi_bench.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("imhi_bench.cli.labeler",))
    out = tmp_path / "agree.json"
    assert cli.main(["labeler", "agree", "--data-dir", str(imhi_dir), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rules alone" in text and "non-clinical" in text
    got = json.loads(out.read_text())
    assert got["labeler"] is None
    rows = got["texts"]
    for name, floor in STRIPPED_FLOORS.items():
        plain = rows[f"{name} label-stripped"]
        assert set(plain) == {"set", "n", "rules"}
        assert plain["rules"] >= 100 * floor, name
        # an option list that chooses nothing changes nothing the rules read
        assert rows[f"{name} label-stripped after an option list"] == plain
        assert f"{name} label-stripped" in text
    assert rows["DR label-stripped"] == {"set": "DR", "n": 405, "rules": 91.6}
    for fname in ("chatgpt_data", "chatgpt_false_data"):
        assert rows[f"DR_annotation/{fname}"]["rules"] >= 95.0
    # --sets narrows it, the DR_annotation rows coming with DR only
    assert cli.main(["labeler", "agree", "--data-dir", str(imhi_dir), "--sets", "SAD",
                     "--json", str(out)]) == 0
    assert list(json.loads(out.read_text())["texts"]) == \
        ["SAD label-stripped", "SAD label-stripped after an option list"]
    # a data dir with no test file: one line saying how to fill it
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert cli.main(["labeler", "agree", "--data-dir", str(empty)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "no IMHI test file in" in line and "data fetch --dest" in line


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # the answer slot, in many spellings
        ("DR", "No. \n\nThe poster expresses frustration.", "no"),
        ("DR", "yes", "yes"),
        ("DR", "**Answer:** Yes\n\nReasoning: the poster feels empty.", "yes"),
        ("DR", "NO, not depressed.", "no"),
        ("dreaddit", " yes. Reasoning: deadlines everywhere.", "yes"),
        ("Irf", "yes, the post does show a risk of thwarted belongingness.", "yes"),
        ("t-sid", "Label: depression", "depression"),
        ("SAD", " emotional turmoil. Reasoning: ...", "emotion turmoil"),
        ("CAMS", "none. Reasoning: nothing in the post.", "none"),
        # 'Reasoning:' first, class inside or at the end
        ("SAD", "Reasoning: The poster worries about rent. This falls under the category of "
                "work-related stress.", "work"),
        ("SAD", "Reasoning: The post mentions exams and a boss. Therefore, the appropriate "
                "label is Work.", "work"),
        ("SAD", "The poster is anxious about money. The stress cause of this post is "
                "'financial problem'.", "financial problem"),
        ("DR", "Reasoning: The post does not exhibit strong emotional indicators of "
               "depression.", "no"),
        ("DR", "Reasoning: The post shows hopelessness, which is consistent with depression.",
         "yes"),
        ("DR", "The poster has no friends, which suggests depression.", "yes"),
        ("DR", "There is no indication that the poster is depressed.", "no"),
        ("loneliness", "Although the poster has a family, they feel deeply lonely.", "yes"),
        ("loneliness", "The poster feels isolated, with no one to talk to.", "yes"),
        ("DR", "Based on the post, I would say that the poster does not suffer from depression.",
         "no"),
        ("t-sid", "This tweet is a normal conversation with no signs of any mental disorder.",
         "no mental disorders"),
        ("dreaddit", "The post mentions stress, but the poster does not seem stressed.", "no"),
        ("MultiWD", "Therefore, the wellness dimension of the vocational aspect does not exist "
                    "in this post.", "no"),
        ("t-sid", "There is no indication of any symptoms or distress that would suggest a "
                  "mental disorder.", "no mental disorders"),
        ("swmh", "The post shows no signs of depression or anxiety.", "no mental disorder"),
        ("CAMS", "The post does not mention any specific cause of depression.", "none"),
        # several classes: the one after the label cue, then the first
        ("swmh", "While PTSD is mentioned, the primary focus is on the bipolar disorder.",
         "bipolar disorder"),
        ("swmh", "This post shows mental disorder symptoms related to depression and anxiety.",
         "depression"),
        ("SAD", "It is not related to work; the stress comes from family issues.",
         "family issues"),
        ("SAD", "Sure! Based on the post, I would classify the stress cause as \"School\". "
                "Family issues could also play a part.", "school"),
        ("t-sid", "The tweet says 'I didn't kill myself', suggesting suicidal ideation.",
         "suicide or self-harm tendency"),
        # word boundaries: no 'no' inside 'know', no 'work' inside 'network'
        ("DR", "I know this is hard. The poster clearly suffers from depression.", "yes"),
        ("SAD", "The poster's social network is small.", "social relationships"),
    ],
)
def test_extracts_free_form_labels(name, text, expected):
    assert extract_label(name, text) == expected, explain_label(name, text)


@pytest.mark.parametrize(
    "name,text",
    [
        ("DR", ""),
        ("DR", None),
        ("DR", "I'm sorry, I can't help with that request."),
        ("DR", "It is unclear whether the poster suffers from depression."),
        ("DR", "There isn't enough information to determine if the poster is depressed."),
        ("SAD", "The post is short."),
        ("t-sid", "What mental disorder symptoms does this post show?"),
        ("DR", "I know what you mean."),
        ("SAD", "The poster's network is small."),
    ],
)
def test_unparseable_is_none_never_a_class(name, text):
    assert extract_label(name, text) is None


def test_explain_label_says_which_rule_decided():
    label, rule, sentence = explain_label(
        "SAD", "Reasoning: The post mentions school. In conclusion, the label is work.")
    assert (label, rule) == ("work", "category statement")
    assert "label is work" in sentence
    label, rule, sentence = explain_label(
        "SAD", "Reasoning: The post mentions school. It is most likely related to work.")
    assert (label, rule) == ("work", "label statement")
    assert explain_label("DR", "Yes, clearly.")[1] == "answer"


def test_gold_label_errors_name_the_row():
    with pytest.raises(ImhiError, match="row 7"):
        gold_label("SAD", "The weather is nice.", where="SAD.csv row 7")
    assert gold_label("SAD", "work") == "work"


def test_unknown_set_is_a_one_line_error():
    with pytest.raises(ImhiError, match="unknown IMHI set 'DRX'"):
        extract_label("DRX", "yes")
