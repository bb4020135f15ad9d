"""Reading the class a free-form model response states: `extract_label(set, text)` reads a
*generated* response leniently, the whole of it, and returns None when no class can be read
(None is scored as wrong, never mapped to a class); `explain_label` also says which rule
decided and on which sentence.

How `extract_label` decides, and why
------------------------------------
First, a response that writes the options out ("A) Alienation B) Jobs and career ...",
"1. PTSD 2. Depression", "(a) work (b) school", `A) Yes B) No`; on one line or several,
anywhere, the answer slot included) is read by `choices`: the list itself is not a claim.
An option may echo a whole gold label sentence ("A. This post shows the stress cause related
to work"), and a catch-all option ("None of the above") names no class.  An option chosen
outside the list ("Correct answer: B", "Answer: (C)", "the answer is D", "so D fits best",
"option B") decides, its letter or number resolved through the list the response wrote
(rule "chosen option"); two chosen at once ("B and D") follow the rule for two classes in
one sentence: the first named wins.  A list with no choice is cut out and the rules below
read the rest; a classifier labeler reads the same cut text (`labeler_text`).

The text is cut into sentences and each sentence gets a rank:

4. the answer slot: the text before a "Reasoning:"-style marker, or a first sentence that
   starts like an answer ("Yes", "No.", "Label: ...", "This post shows ...", a bare class
   name).  This is where the IMHI format puts the label, so it wins over everything else;
3. (multi-class sets) statements of the category ("falls under the category of X",
   "falling under X", "can be categorised as X", "the appropriate label is X", "the cause
   is X", "aligns with the category of X"): the released explanations close with one, after
   reasoning that names other classes in sentences with weaker cues;
2. other sentences with a label cue ("related to ...", "most likely ...", "the answer is
   no");
1.5 conclusions ("Therefore ...", "Overall ...", "In conclusion ...");
1. any other sentence.

The highest rank that yields a class decides.  Within ranks 4, 3, 2 and 1 the *first*
sentence that yields a class wins (models state the answer first); within conclusions the
*last* one wins (a conclusion closes the text).  Within one sentence, a class named after a
statement of the category beats one named before it (rule "(category statement)"), then a
class named after a label cue, and otherwise the first class named wins; mentions in a
negated clause ("not related to work") or a concessive one ("Although it mentions work, ...")
do not count.  A relation the schema names a class by is a mention of that class (rule
"(relative)": in SAD, strain with a parent, sibling, child or a partner's family, "tension
with their father", is family issues; with friends, colleagues or strangers it stays
social relationships).  For the binary sets a sentence yields a class through a leading
yes/no, an explicit "the answer is yes", or a claim about the set's concept (depression,
stress, ...), negated or not.  Hedges: a clause opened by "Although", "While", "Whilst",
"Even though" ... is concessive, and for the binary sets a concession alone makes no claim;
a negation whose object is a degree ("not severe depression", "is not very severe", "not
clinical") denies the degree, not the condition, so that mention makes no claim.  Only when
nothing else in the text claims are concessions and degree denials read as today's rules
read them (the released explanations say "no signs of very severe depression" for *no*).

`explain_label` names the stage that decided, with the rule within its sentence in
brackets ("first claim (relative)"); `RULES_VERSION` changes whenever the rules do.

A chosen option or an answer slot is an *explicit* answer (`explicit_label`): a classifier
labeler defers to it and reads only the responses without one.
"""

from __future__ import annotations

import re
from functools import cache

from imhi_bench.benchmark.sets import get_set
from imhi_bench.scoring.labels.choices import (
    Options,
    chosen_option,
    find_options,
    without_options,
)
from imhi_bench.scoring.labels.cues import (
    ANSWER_START,
    CATEGORY,
    CONCLUSION,
    CONTRAST,
    EXPLICIT_YES_NO,
    LABEL_CUE,
    PROSE_SLOT,
    UNCERTAIN,
    clauses,
)
from imhi_bench.scoring.labels.negation import concept_claim, negated_after, negated_before
from imhi_bench.scoring.labels.schema import schema

# --------------------------------------------------------------------------------------
# Text plumbing
# --------------------------------------------------------------------------------------

_REASONING = re.compile(
    r"(?:^|(?<=[\s.!?*\"'\]]))(?:reasoning|explanation|rationale|reason|analysis|justification)"
    r"\s*\**\s*:",
    re.IGNORECASE,
)
_PREFIX = re.compile(
    r"^[\s\W]*(?:(?:final\s+)?(?:answer|label|prediction|classification|category|output|"
    r"response|result|assistant|a)\s*\**\s*[:\-=]\s*)?[\s\"'*`#\[(]*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]*]*\s+|\n+")
_WS = re.compile(r"\s+")
_YES_NO = re.compile(r"^(yes|no)\b", re.IGNORECASE)
from imhi_bench.scoring.labels.version import RULES_VERSION  # noqa: E402,F401 (re-exported)

# the reason a sentence reader gives when a rule within the sentence decided
RELATIVE = "relative"
CATEGORY_STATEMENT = "category statement"


def normalise(text: str) -> str:
    """Typographic quotes made plain and markdown emphasis removed, before any reading."""
    return (
        text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')
        .replace("\u201d", '"').replace("**", "").replace("__", "")
    )


def split_label_and_reasoning(text: str) -> tuple[str, str]:
    """('label part', 'reasoning') at the first Reasoning:-style marker; ('', text) if none."""
    m = _REASONING.search(text)
    if m is None:
        return "", text
    return text[: m.start()], text[m.end():]


def explanation(text: str) -> str:
    """The explanation of a response without its leading label sentence."""
    head, rest = split_label_and_reasoning(normalise(text))
    return rest.strip() if head.strip() or rest.strip() else text.strip()


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


# --------------------------------------------------------------------------------------
# Per-sentence readers
# --------------------------------------------------------------------------------------

@cache
def _concept_re(set_name: str) -> re.Pattern:
    return re.compile(rf"\b(?:{schema(set_name).concept})\b", re.IGNORECASE)


@cache
def _mention_re(set_name: str) -> tuple[re.Pattern, dict[str, tuple[str, str]]]:
    """One alternation over every alias and relation (`schema`), longest first, with a group
    per alias: group name -> (class, "relative" for a relation with a relative, else "")."""
    sch = schema(set_name)
    groups, names = [], {}
    pairs = [(cls, a, "") for cls, aliases in sch.aliases.items() for a in aliases]
    pairs += [(cls, a, RELATIVE) for cls, rel in sch.relations.items() for a in rel]
    pairs.sort(key=lambda p: -len(p[1]))
    for i, (cls, alias, why) in enumerate(pairs):
        groups.append(rf"(?P<g{i}>{alias})")
        names[f"g{i}"] = (cls, why)
    return re.compile(r"\b(?:" + "|".join(groups) + r")(?!\w)", re.IGNORECASE), names


def _binary_sentence(set_name: str, sentence: str, degree: bool = True) -> str | None:
    m = EXPLICIT_YES_NO.search(sentence)
    if m:
        return m.group(1).lower()
    if sentence.rstrip().endswith("?") or UNCERTAIN.search(sentence):
        return None
    concept = _concept_re(set_name)
    main: list[str] = []
    conc: list[str] = []
    for clause, concessive in clauses(sentence):
        claims = (concept_claim(clause, cm.start(), cm.end(), degree)
                  for cm in concept.finditer(clause))
        found = [c for c in claims if c]
        if found and CONTRAST.match(clause):
            main = []  # "X, but Y": Y is what the sentence asserts
        (conc if concessive else main).extend(found)
    # a concession alone ("While there may be some stress, the tone is calm") is a hedge:
    # it claims only on the fallback reading
    claims = main if degree else main or conc
    return claims[0] if claims else None


@cache
def _none_concept_re(set_name: str) -> re.Pattern | None:
    concept = schema(set_name).none_concept
    return re.compile(rf"\b(?:{concept})\b", re.IGNORECASE) if concept else None


def _class_mentions(set_name: str, clause: str) -> list[tuple[int, str, bool, str]]:
    """(position, class, negated, why) of every class named in a clause; `why` is
    "relative" for a relation with a relative ("tension with their father").  A negated
    mention of the set's generic concept ("no signs of a mental disorder") names the none
    class."""
    pattern, names = _mention_re(set_name)
    sch = schema(set_name)
    found = []
    for m in pattern.finditer(clause):
        cls, why = names[m.lastgroup]
        negated = cls != sch.none_class and negated_before(clause[: m.start()])
        found.append((m.start(), cls, negated, why))
    generic = _none_concept_re(set_name)
    if generic is not None:
        for m in generic.finditer(clause):
            if negated_before(clause[: m.start()]) or negated_after(clause[m.end():]):
                found.append((m.start(), sch.none_class, False, ""))
    return sorted(found)


def _multiclass_sentence(
    set_name: str, sentence: str, stated_only: bool = False
) -> tuple[str, str] | None:
    """(class, why) the sentence names: after its last statement of the category that names
    one, else (unless `stated_only`) after its first label cue, else first; `why` names a
    rule within the sentence that decided ("category statement" over a class named before
    it, "relative"), else "".  A concession states no category ("While it could fall under
    the category of work, ...")."""
    if sentence.rstrip().endswith("?"):
        return None
    main: list[tuple[int, str, str]] = []
    conc: list[tuple[int, str, str]] = []
    hedged: list[range] = []  # spans of concessive clauses
    offset = 0
    for clause, concessive in clauses(sentence):
        start = sentence.find(clause, offset)
        offset = max(start, offset)
        found = [(offset + pos, cls, why)
                 for pos, cls, negated, why in _class_mentions(set_name, clause) if not negated]
        if found and CONTRAST.match(clause):
            main = []  # "X, but Y": Y is what the sentence asserts
        (conc if concessive else main).extend(found)
        if concessive:
            hedged.append(range(offset, offset + len(clause) + 1))
    mentions = main or ([] if stated_only else conc)
    if not mentions:
        return None
    stated = [m.end() for m in CATEGORY.finditer(sentence)
              if not any(m.start() in span for span in hedged)]
    for end in reversed(stated):
        after = [m for m in mentions if m[0] >= end]
        if after:
            return after[0][1], after[0][2] or (
                CATEGORY_STATEMENT if after[0][1] != mentions[0][1] else "")
    if stated_only:
        return None
    cues = [m.end() for m in LABEL_CUE.finditer(sentence)]
    after = [m for m in mentions if cues and m[0] >= cues[0]]
    return (after or mentions)[0][1:]


def _only_denials(set_name: str, sentences: list[str]) -> bool:
    """True when the text names classes only to deny them ("no sign of depression or
    PTSD"): for a set with a none class, that states the none class."""
    return any(
        negated
        for s in sentences
        for clause, _ in clauses(s)
        for _, _, negated, _ in _class_mentions(set_name, clause)
    )


def _read_sentence(
    set_name: str, sentence: str, *, slot: bool = False, degree: bool = True,
    stated_only: bool = False,
) -> tuple[str, str] | None:
    """(class, why) a sentence states (`_multiclass_sentence`), or None; with `stated_only`
    only a class named after a statement of the category (multi-class sets)."""
    if schema(set_name).concept:
        if stated_only:
            return None  # a binary set's category statements are its label statements
        found = slot and leading_yes_no(sentence) or _binary_sentence(set_name, sentence, degree)
        return (found, "") if found else None
    bare = slot and bare_phrase(set_name, sentence)
    return (bare, "") if bare else _multiclass_sentence(set_name, sentence, stated_only)


def leading_yes_no(text: str) -> str | None:
    """'yes' or 'no' when `text` starts with it (after an "Answer:"-style prefix), else None."""
    m = _YES_NO.match(_PREFIX.sub("", text, count=1))
    return m.group(1).lower() if m else None


def bare_phrase(set_name: str, text: str) -> str | None:
    """The class whose gold phrasing `text` is exactly (after normalising), if any."""
    key = _WS.sub(" ", _PREFIX.sub("", text, count=1)).strip(" \t\n.!\"'*`").lower()
    return _phrase_index(set_name).get(key)


# an option that names its class in its own words is short ("Stress at school"); a longer
# item is reasoning, unless it is a gold label sentence echoed whole
_MAX_OPTION_WORDS = 6


def _option_class(set_name: str, item: str) -> str | None:
    """The class an option of a written-out list names: a gold label sentence echoed whole
    ("This post shows the stress cause related to work"), or in a few words ("Jobs and
    career", "Stress at school", "Yes")."""
    found = bare_phrase(set_name, item)
    if found or len(item.split()) > _MAX_OPTION_WORDS:
        return found
    if schema(set_name).concept:
        return leading_yes_no(item)
    mentions = [cls for _, cls, negated, _ in _class_mentions(set_name, item) if not negated]
    return mentions[0] if mentions else None


@cache
def _phrase_index(set_name: str) -> dict[str, str]:
    sch = schema(set_name)
    return {p: cls for cls, phrases in sch.gold_phrases.items() for p in phrases}


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

def extract_label(set_name: str, text: str | None) -> str | None:
    """The class a free-form response states for `set_name`, or None if none can be read."""
    return explain_label(set_name, text)[0]


def explicit_label(set_name: str, text: str | None) -> str | None:
    """The class a response states explicitly, or None when only its prose states one:
    an option chosen from a list it wrote, or its answer slot (the text before a
    "Reasoning:" marker, or a first sentence that is a yes/no, an "Answer:"/"Label:" line, a
    class name or "This post shows ...").  A classifier labeler defers to it: a classifier
    trained on gold-style text misreads "Correct answer: B" after a written option list."""
    label, rule, sentence = explain_label(set_name, text)
    stage = rule.partition(" (")[0]  # "answer (relative)": the stage is "answer"
    if stage == "chosen option":
        return label
    if stage != "answer":
        return None
    head, _ = split_label_and_reasoning(_read_options(set_name, text or "")[0])
    return label if head.strip() or not PROSE_SLOT.match(sentence) else None


def _read_options(set_name: str, text: str) -> tuple[str, Options | None]:
    """(the text as the rules read it, the option list it writes out or None)."""
    text = normalise(text)
    return text, find_options(text, lambda item: _option_class(set_name, item))


def labeler_text(set_name: str, text: str | None) -> str:
    """The text a classifier labeler reads, in training and in reading alike: the text the
    rules read, with a written-out option list cut out (a classifier reads an unchosen
    list as a claim and leans to the option written first)."""
    set_name = get_set(set_name).name
    text, options = _read_options(set_name, text if isinstance(text, str) else "")
    return (without_options(text, options) if options else text).strip()


def explain_label(set_name: str, text: str | None) -> tuple[str | None, str, str]:
    """(class or None, which rule decided, the sentence that decided): the label and why."""
    set_name = get_set(set_name).name
    if not text or not isinstance(text, str) or not text.strip():
        return None, "empty", ""
    text, options = _read_options(set_name, text)
    if options is not None:
        chosen = chosen_option(text, options, negated_before)
        if chosen:
            return chosen[0], "chosen option", chosen[1]
        text = without_options(text, options)
    head, body = split_label_and_reasoning(text)
    sentences = _sentences(body)
    if head.strip():
        slot = [head]
    elif sentences and (
        ANSWER_START.match(sentences[0]) or bare_phrase(set_name, sentences[0])
    ):
        slot, sentences = [sentences[0]], sentences[1:]
    else:
        slot = []
    found = _decide(set_name, slot, sentences, degree=True)
    if found[0] is None and schema(set_name).concept:
        # only degree denials ("no signs of very severe depression") were left: read them
        # as denials of the condition, as before the degree rule
        found = _decide(set_name, slot, sentences, degree=False)
    return found


def _decide(
    set_name: str, slot: list[str], sentences: list[str], *, degree: bool
) -> tuple[str | None, str, str]:
    """The first stage that reads a class decides; the rule is the stage, with the rule
    within its sentence that decided in brackets ("label statement (category statement)")."""
    stages = (
        ("answer", [part for s in slot for part in _sentences(s) or [s]], {"slot": True}),
        ("category statement", [s for s in sentences if CATEGORY.search(s)],
         {"stated_only": True}),
        ("label statement", [s for s in sentences if LABEL_CUE.search(s) or CATEGORY.search(s)
                             or EXPLICIT_YES_NO.search(s)], {}),
        ("conclusion", [s for s in reversed(sentences) if CONCLUSION.match(s)], {}),
        ("first claim", sentences, {}),
    )
    for stage, candidates, how in stages:
        for s in candidates:
            found = _read_sentence(set_name, s, degree=degree, **how)
            if found:
                why = found[1] if found[1] != stage else ""
                return found[0], f"{stage} ({why})" if why else stage, s
    sch = schema(set_name)
    if sch.none_class and _only_denials(set_name, slot + sentences):
        return sch.none_class, "only denials", ""
    return None, "no class stated", ""
