"""Issue 23's shapes, in wordings of our own: an option list in the answer slot then the
choice, a statement of the category after a keyword, strain with a relative, and the text a
classifier labeler reads (option lists cut out, the same for training and reading)."""

from __future__ import annotations

import pytest
from tiny_models import build_tiny_bert_classifier

from imhi_bench.scoring.labeler import load
from imhi_bench.scoring.labeler.train import training_texts
from imhi_bench.scoring.labels.reader import (
    RULES_VERSION,
    explain_label,
    explicit_label,
    labeler_text,
)

# 1. An option list written where the answer goes, then the choice: the list is never the
# answer slot's claim, whatever its options look like.
LIST_THEN_CHOICE = [
    # options echo the whole gold label sentence
    ("SAD", "A. This post shows the stress cause related to work B. This post shows the stress "
            "cause related to family issues C. This post shows the stress cause related to "
            "school\nCorrect answer: B. This post shows the stress cause related to family "
            "issues.", "family issues"),
    ("CAMS", "A. This post shows causes of depression related to medication\nB. This post "
             "shows causes of depression related to jobs and career\nC. All of the above\n"
             "The answer is B.", "jobs and career"),
    ("DR", "A. Yes, the poster suffers from depression B. No, the poster does not suffer from "
           "depression\nCorrect answer: B. No, the poster does not suffer from depression.", "no"),
    # a catch-all option that names no class
    ("SAD", "A. Work B. Family issues C. None of the above D. School\nCorrect answer: B. "
            "Family issues.", "family issues"),
    ("t-sid", "1) Depression 2) PTSD 3) None of these options\nAnswer: 2) PTSD.", "PTSD"),
    ("swmh", "A. Depression B. Anxiety C. Not sure\nFinal answer: (B)", "anxiety"),
    # the list inside the head before "Reasoning:", the choice after it
    ("SAD", "Answer: A. School B. Work C. Something else D. Family issues. Reasoning: the "
            "poster's teacher is strict, yet the choice is D.", "family issues"),
]


@pytest.mark.parametrize("name,text,expected", LIST_THEN_CHOICE)
def test_an_option_list_in_the_answer_slot_is_not_its_claim(name, text, expected):
    assert explain_label(name, text)[:2] == (expected, "chosen option")
    assert explicit_label(name, text) == expected


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # no choice: the list is cut out and the reasoning decides; nothing explicit remains
        ("SAD", "A. Work B. Family issues C. Something else\nReasoning: The poster worries "
                "about exams.", "school"),
        ("SAD", "Answer: A. Work B. School C. None of the above. Reasoning: The poster is "
                "behind on rent and owes money.", "financial problem"),
        ("CAMS", "A. This post shows causes of depression related to alienation B. This post "
                 "shows causes of depression related to medication\nThe poster's new "
                 "medicine leaves them numb.", "medication"),
    ],
)
def test_an_unchosen_list_in_the_answer_slot_is_cut_out(name, text, expected):
    assert extract(name, text) == expected
    assert explicit_label(name, text) is None


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # a reasoning list whose items are not options keeps its words
        ("SAD", "1. Exam stress\n2. Not sleeping well before the test", "school"),
        ("SAD", "A. The poster lost their job last week and fears eviction.\nB. The poster "
                "also mentions money.", "work"),
    ],
)
def test_lists_that_are_not_options_are_read(name, text, expected):
    assert extract(name, text) == expected


# 2. A statement of the category decides over a keyword named before it, in its sentence
# and over sentences with weaker cues.
@pytest.mark.parametrize(
    "name,text,expected",
    [
        ("SAD", "The poster's stress is related to the money they owe a friend, falling under "
                "the category of social relationships.", "social relationships"),
        ("SAD", "Most likely the exams play a part, and the post can be categorised as "
                "emotional turmoil.", "emotion turmoil"),
        ("SAD", "The primary issue mentioned is a sick parent, so the stress cause is health "
                "issues.", "health issues"),
        ("SAD", "Reasoning: The stress is related to school. The poster mentions exams. This "
                "falls under the category of everyday decision making, as they cannot choose "
                "a major.", "everyday decision making"),
        ("CAMS", "The depression is related to their job loss, and the cause of their "
                 "depression is medication side effects.", "medication"),
        ("swmh", "The post is most likely about depression, and it aligns with the category "
                 "of anxiety given the panic.", "anxiety"),
        ("SAD", "It is most appropriate to label it as other causes, though school is "
                "mentioned.", "other stress causes"),
    ],
)
def test_a_statement_of_the_category_decides(name, text, expected):
    label, rule, _ = explain_label(name, text)
    assert label == expected
    assert rule.startswith("category statement") or rule.endswith("(category statement)")


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # a concession states no category: "While it could fall under the category of X"
        ("SAD", "While it could fall under the category of work, the poster's exams are the "
                "main worry.", "school"),
        # a denied category is not stated
        ("SAD", "The category is not work; it is family issues.", "family issues"),
        ("SAD", "This does not fall under the category of school. The poster's boss yells at "
                "them.", "work"),
    ],
)
def test_hedged_or_denied_category_statements(name, text, expected):
    assert extract(name, text) == expected


# 3. Strain with a relative is family issues; with friends, colleagues or a partner it
# stays social relationships.
@pytest.mark.parametrize(
    "text",
    [
        "There is tension with their father, and the relationship with the father is a "
        "contributing factor.",
        "The poster has a strained relationship with their older sister.",
        "The poster keeps arguing with her mother-in-law about the wedding.",
        "The stress comes from problems with his son, who refuses to speak to him.",
        "The poster's relationship with their boyfriend's family is tense.",
        "Conflicts between the poster and their grandparents weigh on them.",
    ],
)
def test_strain_with_a_relative_is_family_issues(text):
    label, rule, _ = explain_label("SAD", text)
    assert (label, rule) == ("family issues", "first claim (relative)")


@pytest.mark.parametrize(
    "text",
    [
        "The poster has a falling out with a close friend.",
        "The poster's relationship with their coworkers is tense.",
        "The poster's relationship with their boyfriend is ending.",
        "The poster has constant arguments with friends from the gym.",
    ],
)
def test_strain_with_others_stays_social_relationships(text):
    assert extract("SAD", text) == "social relationships"


def test_relatives_are_a_sad_rule_only():
    # CAMS has its own "relationship" class: strain with a parent stays relationship there
    assert extract("CAMS", "The poster has a difficult relationship with their mother.") == \
        "relationship"


# 4. What a classifier labeler reads.
def test_labeler_text_cuts_option_lists_and_nothing_else():
    listed = ("A. Work B. Family issues C. School\nReasoning: The poster fights with a "
              "\u201cfriend\u201d.")
    assert labeler_text("SAD", listed) == 'Reasoning: The poster fights with a "friend".'
    plain = "  Reasoning: The poster mentions option B of their **plan**.  "
    assert labeler_text("SAD", plain) == "Reasoning: The poster mentions option B of their plan."
    assert labeler_text("DR", "A) Yes B) No\nThe poster feels fine.") == "The poster feels fine."
    assert labeler_text("DR", None) == ""


def test_training_and_reading_clean_the_same_way(tmp_path, monkeypatch):
    listed = ("A. School B. Work C. Family issues\nThis post shows the stress cause related to "
              "work. Reasoning: The boss shouts at the poster.")
    # training: both variants of a row without its option list
    full, bare = training_texts("SAD", [(listed, "work")])
    assert full == (labeler_text("SAD", listed), "work")
    assert not full[0].startswith("A.") and "School" not in full[0]
    assert bare == ("The boss shouts at the poster.", "work")
    # reading: Labeler.predict hands the classifier the same cleaned text
    folder = build_tiny_bert_classifier(tmp_path / "SAD", 9)
    seen: list[str] = []

    def record(model, tokenizer, texts, **kw):
        seen.extend(texts)
        return [0] * len(texts)

    monkeypatch.setattr(load, "predict_ids", record)
    lab = load.load_labeler(folder.parent)
    assert lab.predict("SAD", [listed, None]) == ["school", "school"]
    assert seen == [labeler_text("SAD", listed), ""]


def test_rules_version_is_an_int():
    assert isinstance(RULES_VERSION, int) and RULES_VERSION >= 2


def extract(name: str, text: str) -> str | None:
    label, rule, sentence = explain_label(name, text)
    print(label, rule, sentence)
    return label
