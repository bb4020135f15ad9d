"""Reading the class a free-form model response states: `extract_label(set, text)` reads a
*generated* response leniently, the whole of it, and returns None when no class can be read
(None is scored as wrong, never mapped to a class); `explain_label` also says which rule
decided and on which sentence.

How `extract_label` decides, and why
------------------------------------
First, a response that writes the options out ("A) Alienation B) Jobs and career ...",
"1. PTSD 2. Depression", "(a) work (b) school", `A) Yes B) No`; on one line or several) is read
by `choices`: the list itself is not a claim.  An option chosen outside it ("Correct answer:
B", "Answer: (C)", "the answer is D", "so D fits best", "option B") decides, its letter or
number resolved through the list the response wrote (rule "chosen option"); two chosen at
once ("B and D") follow the rule for two classes in one sentence: the first named wins.  A
list with no choice is cut out and the rules below read the rest.

The text is cut into sentences and each sentence gets a rank:

3. the answer slot: the text before a "Reasoning:"-style marker, or a first sentence that
   starts like an answer ("Yes", "No.", "Label: ...", "This post shows ...", a bare class
   name).  This is where the IMHI format puts the label, so it wins over everything else;
2. sentences that state a label explicitly ("the appropriate label is Work", "falls under
   the category of ...", "I would classify ... as ...", "the answer is no");
1.5 conclusions ("Therefore ...", "Overall ...", "In conclusion ...");
1. any other sentence.

The highest rank that yields a class decides.  Within ranks 3, 2 and 1 the *first* sentence
that yields a class wins (models state the answer first); within conclusions the *last* one
wins (a conclusion closes the text).  Within one sentence, a class named after a label cue
beats one named before it, and otherwise the first class named wins; mentions in a negated
clause ("not related to work") or a concessive one ("Although it mentions work, ...") do
not count.  For the binary sets a sentence yields a class through a leading yes/no, an
explicit "the answer is yes", or a claim about the set's concept (depression, stress, ...),
negated or not.  Hedges: a clause opened by "Although", "While", "Whilst", "Even though"
... is concessive, and for the binary sets a concession alone makes no claim; a negation
whose object is a degree ("not severe depression", "is not very severe", "not clinical")
denies the degree, not the condition, so that mention makes no claim.  Only when nothing
else in the text claims are concessions and degree denials read as today's rules read them
(the released explanations say "no signs of very severe depression" for *no*).

A chosen option or an answer slot is an *explicit* answer (`explicit_label`): a classifier
labeler defers to it and reads only the responses without one.
"""

from __future__ import annotations

import re
from functools import cache

from imhi_bench.benchmark.sets import get_set
from imhi_bench.scoring.labels.choices import chosen_option, find_options, without_options
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
_UNCERTAIN = re.compile(
    r"\b(?:unclear|uncertain|not (?:entirely )?clear|may or may not|"
    r"(?:cannot|can't|can not|unable to|not possible to|impossible to|difficult to|hard to"
    r"|inappropriate to|premature to)"
    r" (?:be )?(?:determined?|say|tell|conclude|know|assess|infer|diagnose|label)\w*|"
    r"(?:insufficient|not enough|n't enough|limited) (?:information|context|evidence|data)|"
    r"to (?:determine|tell|say|know|conclude) (?:if|whether))\b",
    re.IGNORECASE,
)
# Clause boundaries that change what a negation or a mention applies to.
_CLAUSE_SPLIT = re.compile(
    r"[;:]|(?:,\s*|\s+)(?=(?:but|however|yet|whereas|although|though|even though|while|whilst)\b)"
    r"|\s+-\s+|\s+—\s+",
    re.IGNORECASE,
)
_CONTRAST = re.compile(r"^\W*(?:but|however|yet)\b", re.IGNORECASE)
_CONCESSIVE = re.compile(
    r"^\W*(?:although|though|even though|even if|while|whilst|despite|whereas)\b", re.IGNORECASE
)
_LABEL_CUE = re.compile(
    r"\b(?:label\w*|categor\w*|classif\w*|falls? (?:under|into|within)|answer\w*|predict\w*"
    r"|verdict|diagnos\w*|related to|stress cause|cause of (?:the )?(?:stress|depression)"
    r"|causes? (?:is|would be|are)|(?:mental )?disorder symptoms? (?:of|is|are)|i would say"
    r"|best (?:describes?|fits?)|most (?:likely|appropriate|fitting)"
    r"|primary (?:cause|focus|issue))\b",
    re.IGNORECASE,
)
_CONCLUSION = re.compile(
    r"^\W*(?:therefore|thus|hence|so|overall|in conclusion|in summary|to summari[sz]e|"
    r"to conclude|consequently|as a result|all in all|ultimately|in short|based on|given)\b",
    re.IGNORECASE,
)
_ANSWER_START = re.compile(
    r"^\W*(?:yes|no|this post shows|the post shows|the poster (?:does|suffers|is)|"
    r"(?:final\s+)?(?:answer|label|prediction|classification|category)\s*\**\s*[:\-=])",
    re.IGNORECASE,
)
_YES_NO = re.compile(r"^(yes|no)\b", re.IGNORECASE)
_EXPLICIT_YES_NO = re.compile(
    r"\b(?:answer|label|prediction|verdict|response|classification)\b[^.?!]{0,40}?"
    r"(?:\bis\b|:|\bwould be\b|=|\bas\b)\s*[\"'*`]*\s*(yes|no)\b",
    re.IGNORECASE,
)


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


def _clauses(sentence: str) -> list[tuple[str, bool]]:
    """Clauses of a sentence with a flag saying whether each is concessive.  A concessive
    clause runs to its first comma ("Although X, Y": X concessive, Y the main clause)."""
    out: list[tuple[str, bool]] = []
    for part in _CLAUSE_SPLIT.split(sentence):
        if not part or not part.strip():
            continue
        if _CONCESSIVE.match(part):
            head, comma, tail = part.partition(",")
            out.append((head, True))
            if comma and tail.strip():
                out.append((tail, False))
        else:
            out.append((part, False))
    return out


# --------------------------------------------------------------------------------------
# Per-sentence readers
# --------------------------------------------------------------------------------------

@cache
def _concept_re(set_name: str) -> re.Pattern:
    return re.compile(rf"\b(?:{schema(set_name).concept})\b", re.IGNORECASE)


@cache
def _mention_re(set_name: str) -> tuple[re.Pattern, dict[str, str]]:
    """One alternation over every alias, longest first, with a group per class."""
    sch = schema(set_name)
    groups, names = [], {}
    pairs = [(cls, a) for cls, aliases in sch.aliases.items() for a in aliases]
    pairs.sort(key=lambda p: -len(p[1]))
    for i, (cls, alias) in enumerate(pairs):
        groups.append(rf"(?P<g{i}>{alias})")
        names[f"g{i}"] = cls
    return re.compile(r"\b(?:" + "|".join(groups) + r")(?!\w)", re.IGNORECASE), names


def _binary_sentence(set_name: str, sentence: str, degree: bool = True) -> str | None:
    m = _EXPLICIT_YES_NO.search(sentence)
    if m:
        return m.group(1).lower()
    if sentence.rstrip().endswith("?") or _UNCERTAIN.search(sentence):
        return None
    concept = _concept_re(set_name)
    main: list[str] = []
    conc: list[str] = []
    for clause, concessive in _clauses(sentence):
        claims = (concept_claim(clause, cm.start(), cm.end(), degree)
                  for cm in concept.finditer(clause))
        found = [c for c in claims if c]
        if found and _CONTRAST.match(clause):
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


def _class_mentions(set_name: str, clause: str) -> list[tuple[int, str, bool]]:
    """(position, class, negated) of every class named in a clause.  A negated mention of
    the set's generic concept ("no signs of a mental disorder") names the none class."""
    pattern, names = _mention_re(set_name)
    sch = schema(set_name)
    found = []
    for m in pattern.finditer(clause):
        cls = names[m.lastgroup]
        negated = cls != sch.none_class and negated_before(clause[: m.start()])
        found.append((m.start(), cls, negated))
    generic = _none_concept_re(set_name)
    if generic is not None:
        for m in generic.finditer(clause):
            if negated_before(clause[: m.start()]) or negated_after(clause[m.end():]):
                found.append((m.start(), sch.none_class, False))
    return sorted(found)


def _multiclass_sentence(set_name: str, sentence: str) -> str | None:
    if sentence.rstrip().endswith("?"):
        return None
    main: list[tuple[int, str]] = []
    conc: list[tuple[int, str]] = []
    offset = 0
    for clause, concessive in _clauses(sentence):
        start = sentence.find(clause, offset)
        offset = max(start, offset)
        found = [(offset + pos, cls) for pos, cls, negated in _class_mentions(set_name, clause)
                 if not negated]
        if found and _CONTRAST.match(clause):
            main = []  # "X, but Y": Y is what the sentence asserts
        (conc if concessive else main).extend(found)
    mentions = main or conc
    if not mentions:
        return None
    cues = [m.end() for m in _LABEL_CUE.finditer(sentence)]
    if cues:
        after = [cls for pos, cls in mentions if pos >= cues[0]]
        if after:
            return after[0]
    return mentions[0][1]


def _only_denials(set_name: str, sentences: list[str]) -> bool:
    """True when the text names classes only to deny them ("no sign of depression or
    PTSD"): for a set with a none class, that states the none class."""
    return any(
        negated
        for s in sentences
        for clause, _ in _clauses(s)
        for _, _, negated in _class_mentions(set_name, clause)
    )


def _read_sentence(
    set_name: str, sentence: str, *, slot: bool = False, degree: bool = True
) -> str | None:
    sch = schema(set_name)
    if sch.concept:
        if slot:
            found = leading_yes_no(sentence)
            if found:
                return found
        return _binary_sentence(set_name, sentence, degree)
    if slot:
        bare = bare_phrase(set_name, sentence)
        if bare:
            return bare
    return _multiclass_sentence(set_name, sentence)


def leading_yes_no(text: str) -> str | None:
    """'yes' or 'no' when `text` starts with it (after an "Answer:"-style prefix), else None."""
    m = _YES_NO.match(_PREFIX.sub("", text, count=1))
    return m.group(1).lower() if m else None


def bare_phrase(set_name: str, text: str) -> str | None:
    """The class whose gold phrasing `text` is exactly (after normalising), if any."""
    key = _WS.sub(" ", _PREFIX.sub("", text, count=1)).strip(" \t\n.!\"'*`").lower()
    return _phrase_index(set_name).get(key)


def _option_class(set_name: str, item: str) -> str | None:
    """The class an option of a written-out list names ("Jobs and career", "Yes")."""
    found = bare_phrase(set_name, item)
    if found or schema(set_name).concept:
        return found or leading_yes_no(item)
    mentions = [cls for _, cls, negated in _class_mentions(set_name, item) if not negated]
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


# A first sentence the answer-slot rule takes only because it starts like the IMHI label
# sentence ("The poster is ...", "The poster does ..."): prose, not a stated answer.
_PROSE_SLOT = re.compile(r"^\W*the poster (?:does|suffers|is)\b", re.IGNORECASE)


def explicit_label(set_name: str, text: str | None) -> str | None:
    """The class a response states explicitly, or None when only its prose states one:
    an option chosen from a list it wrote, or its answer slot (the text before a
    "Reasoning:" marker, or a first sentence that is a yes/no, an "Answer:"/"Label:" line, a
    class name or "This post shows ...").  A classifier labeler defers to it: a classifier
    trained on gold-style text misreads "Correct answer: B" after a written option list."""
    label, rule, sentence = explain_label(set_name, text)
    if rule == "chosen option":
        return label
    if rule != "answer":
        return None
    head, _ = split_label_and_reasoning(normalise(text or ""))
    return label if head.strip() or not _PROSE_SLOT.match(sentence) else None


def explain_label(set_name: str, text: str | None) -> tuple[str | None, str, str]:
    """(class or None, which rule decided, the sentence that decided): the label and why."""
    set_name = get_set(set_name).name
    if not text or not isinstance(text, str) or not text.strip():
        return None, "empty", ""
    text = normalise(text)
    options = find_options(text, lambda item: _option_class(set_name, item))
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
        _ANSWER_START.match(sentences[0]) or bare_phrase(set_name, sentences[0])
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
    for s in slot:
        for part in _sentences(s) or [s]:
            found = _read_sentence(set_name, part, slot=True, degree=degree)
            if found:
                return found, "answer", part
    for s in sentences:
        if _LABEL_CUE.search(s) or _EXPLICIT_YES_NO.search(s):
            found = _read_sentence(set_name, s, degree=degree)
            if found:
                return found, "label statement", s
    for s in reversed(sentences):
        if _CONCLUSION.match(s):
            found = _read_sentence(set_name, s, degree=degree)
            if found:
                return found, "conclusion", s
    for s in sentences:
        found = _read_sentence(set_name, s, degree=degree)
        if found:
            return found, "first claim", s
    sch = schema(set_name)
    if sch.none_class and _only_denials(set_name, slot + sentences):
        return sch.none_class, "only denials", ""
    return None, "no class stated", ""
