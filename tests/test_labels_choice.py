"""Multiple-choice answers (option lists, chosen options) and hedged binary answers."""

from __future__ import annotations

import pytest

from imhi_bench.scoring.labels.reader import explain_label, extract_label

CHOSEN = [
    # CAMS: one line, letters with ")", the choice repeats the option text
    ("CAMS", "A) Alienation B) Jobs and career C) Medication D) Relationship\n"
             "Correct answer: B) Jobs and career", "jobs and career"),
    ("CAMS", "(A) None (B) Bias or abuse (C) Medication. The answer is C.", "medication"),
    # SAD: letters in parentheses, lower case, the answer slot after the list
    ("SAD", "Options: (a) work (b) school (c) financial problem. Answer: (c) financial problem. "
            "Reasoning: the poster cannot pay rent at work.", "financial problem"),
    ("SAD", "A. School\nB. Work\nC. Family issues\nD. Emotional turmoil\n"
            "The poster fights with a parent, so C fits best.", "family issues"),
    # a list that wraps lines inside an option
    ("SAD", "A) Everyday decision\nmaking B) Financial problem C) School\nAnswer: A",
     "everyday decision making"),
    # T-SID: numbers with "."
    ("t-sid", "1. PTSD 2. Depression 3. Suicide or self-harm tendency  The post describes "
              "flashbacks of the accident, so 1 fits best.", "PTSD"),
    ("t-sid", "1) Depression\n2) PTSD\n3) No mental disorders\nI would choose option 3.",
     "no mental disorders"),
    # SWMH: several lines, two options chosen at once -> the first named, as for two classes
    ("swmh", "A. Depression\nB. Suicide\nC. Anxiety\nD. Bipolar disorder\n"
             "E. No mental disorder\nCorrect answer: B and D.", "suicide"),
    ("swmh", "(1) Anxiety (2) Depression (3) Bipolar disorder. Option 2 is the best match.",
     "depression"),
    # binary sets
    ("DR", "A) Yes B) No\nAnswer: B", "no"),
    ("dreaddit", "(A) Yes (B) No. The answer is (A) Yes.", "yes"),
    ("loneliness", "1. Yes\n2. No\nThe correct answer is 1.", "yes"),
]


@pytest.mark.parametrize("name,text,expected", CHOSEN)
def test_chosen_option_decides_through_the_written_list(name, text, expected):
    label, rule, _ = explain_label(name, text)
    assert (label, rule) == (expected, "chosen option")


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # no choice: the list is not a claim, the reasoning after it decides
        ("CAMS", "A) Alienation B) Jobs and career C) Medication D) Relationship  Reasoning: "
                 "losing the job is what weighs on the poster.", "jobs and career"),
        ("SAD", "A) School B) Work C) Family issues\nThe poster worries about their parents.",
         "family issues"),
        ("t-sid", "1. Depression 2. PTSD 3. No mental disorders\n"
                  "The tweet talks about nightmares after the war, a sign of post-traumatic "
                  "stress.", "PTSD"),
        ("swmh", "A. Depression B. Anxiety C. Suicide\nThe poster describes panic attacks.",
         "anxiety"),
        ("DR", "A) Yes B) No\nThe poster shows no signs of depression.", "no"),
        # a letter chosen without a written list is not resolved through a fixed order
        ("SAD", "Answer: B. Reasoning: the exams are close.", "school"),
        # a numbered reasoning list is not an option list
        ("SAD", "1. The poster has a big exam tomorrow and is worried about it.\n"
                "2. The poster also mentions being tired.", "school"),
        # an option denied is not chosen
        ("SAD", "A) School B) Work\nOption A is not correct; the boss is the problem, so B "
                "fits best.", "work"),
    ],
)
def test_option_lists_are_not_claims(name, text, expected):
    assert extract_label(name, text) == expected, explain_label(name, text)


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # While / Whilst / Even though are concessive: the main clause carries the claim
        ("DR", "While the poster is not depressed all the time, the post shows depression.",
         "yes"),
        ("dreaddit", "Whilst the poster mentions stress at work, they are not stressed now.",
         "no"),
        ("loneliness", "Even though the poster has friends, they feel lonely.", "yes"),
        # a negated degree denies the degree, not the condition
        ("DR", "While the post does not show the hopelessness typical of severe depression, "
               "it does indicate symptoms of depression.", "yes"),
        ("DR", "The poster does not have severe depression, but the post reflects a "
               "depressed mood.", "yes"),
        ("dreaddit", "The stress is not very severe. Still, the poster is clearly stressed.",
         "yes"),
        ("DR", "The post is not clinical depression. The poster seems depressed after the loss.",
         "yes"),
        # where nothing else claims, the degree denial reads as today
        ("DR", "The post does not show signs of very severe depression.", "no"),
        # ... and a later negation the rules must see as one: "lacks" denies its object, an
        # infinitive ("evidence to suggest") is governed by the negation before it
        ("DR", "The post does not exhibit strong indicators of very severe depression. While "
               "the poster is annoyed, it lacks the profound hopelessness commonly associated "
               "with very severe depression.", "no"),
        ("DR", "The post does not provide enough evidence to suggest very severe depression.",
         "no"),
        ("dreaddit", "There is nothing in the post to indicate that the poster is stressed.",
         "no"),
        ("dreaddit", "Therefore, the poster does not appear to be suffering from severe stress.",
         "no"),
    ],
)
def test_hedged_binary_answers(name, text, expected):
    assert extract_label(name, text) == expected, explain_label(name, text)


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # "lacks" negates; "lacking" and "lack" also name a symptom, and do not
        ("DR", "The post lacks any sign of depression.", "no"),
        ("Irf", "The poster feels empty and lacking a sense of belonging, which suggests a "
                "risk of thwarted belongingness.", "yes"),
        # a verb coordinated by "and" is a new predicate, out of the negation's reach
        ("loneliness", "The poster lacks close friends and feels lonely.", "yes"),
        ("DR", "The poster has no job and is depressed.", "yes"),
        ("DR", "The poster is not sad and is not depressed.", "no"),
        # an infinitive after "seems" is the clause's own predicate, not the negation's
        ("DR", "The poster is not sleeping and this seems to indicate depression.", "yes"),
        ("DR", "The post does not seem to indicate depression.", "no"),
    ],
)
def test_negation_reach(name, text, expected):
    assert extract_label(name, text) == expected, explain_label(name, text)
