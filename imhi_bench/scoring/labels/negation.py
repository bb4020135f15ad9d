"""Negation and degree: whether a negation reaches a mention, and, for the binary sets,
the claim a mention of the concept makes ('yes', 'no', or none when a negation denies only
its degree)."""

from __future__ import annotations

import re

# "lacks" (the verb, unambiguous, unlike "lack"/"lacking" which also name a symptom: "lacking
# a sense of purpose suggests ...") denies its object: "it lacks the hopelessness associated
# with depression".
_NEG = re.compile(
    r"\b(?:not|no|never|neither|nor|without|lacks|lack of (?:any |clear )?(?:signs?|symptoms?|"
    r"indicat\w*|evidence|mention|focus|emphasis|attention|discussion|reference)|absence|absent"
    r"|free (?:of|from)|none|nothing|cannot|"
    r"unlikely|rather than|instead of|other than|ruled? out)\b|n't\b",
    re.IGNORECASE,
)
# A new predicate between a negation and a mention ends the negation's reach: in "is not
# typical and may indicate depression" or "no friends, which suggests depression" the
# mention is asserted.  A predicate within three words of the negation, with no comma in
# between, is the negated verb itself ("does not strongly align with depression").  An
# infinitive predicate is governed by the negation, not a new one ("does not provide enough
# evidence to suggest depression", "nothing to indicate stress"), unless a verb like "seems"
# makes it the clause's own predicate ("is not sleeping and this seems to indicate ...").
# A second verb coordinated by "and" is a new predicate however close: "lacks close friends
# and feels lonely", "has no job and is depressed".
_PREDICATE = (r"(?:indicat(?:e|es|ing)|suggest(?:s|ing)?|impl(?:y|ies|ying)|align(?:s|ing)?"
              r"|point(?:s|ing)? to|reflect(?:s|ing)?)")
_NEG_BOUNDARY = re.compile(
    r"\b(?:which|who)\b|(?:\band|\bbut|\bso|,)\s+(?:it\s+|this\s+|they\s+)?(?:may|might|could|can)\b"
    r"|(?<!\bto )(?<!that )(?<!that would )(?<!that could )(?<!that might )(?<!that may )"
    rf"\b{_PREDICATE}\b|\b(?:seem|appear|tend)(?:s|ed)?\s+to\s+{_PREDICATE}\b",
    re.IGNORECASE,
)
_COORDINATED_VERB = re.compile(
    r"\band\s+(?:is|are|was|were|feels?|felt|seems?|seemed|appears?|appeared|has|have|had"
    r"|shows?|showed|expresses?|expressed|suffers?|suffered|struggles?|struggled)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\S+")
# A degree: "severe", "very severe", "clinical", "full-blown".  A negation whose object is a
# degree ("not severe depression", "is not very severe", "not clinical") denies the degree,
# not the condition, so the mention it reaches makes no claim either way.
_DEGREE = (
    r"(?:(?:very|so|too|that|as|particularly|especially|overly|extremely|clinically|truly"
    r"|quite|a|any)\s+)*(?:severe(?:ly)?|serious(?:ly)?|clinical(?:ly)?|major|extreme(?:ly)?"
    r"|acute|full[- ]?blown|diagnosable|profound(?:ly)?|debilitating|chronic|intense)"
)
_DEGREE_BEFORE = re.compile(rf"\b{_DEGREE}[\s-]+$", re.IGNORECASE)
_DEGREE_AFTER = re.compile(rf"^\s*(?:be\s+|been\s+|seem\s+|appear\s+)?{_DEGREE}\b", re.IGNORECASE)


def negated_before(before: str) -> bool:
    """Whether a negation in `before` (the clause up to a mention) reaches the mention."""
    for neg in _NEG.finditer(before):
        between = before[neg.end():]
        words = list(_WORD.finditer(between))
        own_verb_end = words[3].start() if len(words) > 3 else len(between)
        bounds = [b for b in _NEG_BOUNDARY.finditer(between)]
        if bounds and bounds[0].start() < own_verb_end and "," not in between[: bounds[0].start()]:
            bounds = bounds[1:]
        if not bounds and not _COORDINATED_VERB.search(between):
            return True
    return False


# "depression is not evident", "the dimension of the vocational aspect does not exist": a
# negation shortly after the mention, with no comma or conjunction in between.
_NEG_AFTER = re.compile(
    r"^(?:\s*(?!(?:and|but|or|which|who|that|while|although|because)\b)[\w'-]+){0,6}?"
    r"\s*(?:\bnot\b|\bnever\b|\babsent\b|\blacking\b|\bunlikely\b|n't\b)",
    re.IGNORECASE,
)


def negated_after(after: str) -> re.Match | None:
    """A negation shortly after a mention ("depression is not evident"), if any."""
    return _NEG_AFTER.search(after)


def concept_claim(clause: str, start: int, end: int, degree: bool) -> str | None:
    """'yes' or 'no' for a mention of the concept; with `degree`, None for one whose
    negation denies only a degree."""
    before = clause[:start]
    if negated_before(before):
        return None if degree and _DEGREE_BEFORE.search(before) else "no"
    after = negated_after(clause[end:])
    if after:
        return None if degree and _DEGREE_AFTER.match(clause[end + after.end():]) else "no"
    return "yes"
