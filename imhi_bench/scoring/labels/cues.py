"""Cues that rank a sentence or split it: answer starts, label cues, statements of the
category, conclusions, hedges, and the clause boundaries that change what a negation or a
mention applies to.  `reader` decides with them."""

from __future__ import annotations

import re

UNCERTAIN = re.compile(
    r"\b(?:unclear|uncertain|not (?:entirely )?clear|may or may not|"
    r"(?:cannot|can't|can not|unable to|not possible to|impossible to|difficult to|hard to"
    r"|inappropriate to|premature to)"
    r" (?:be )?(?:determined?|say|tell|conclude|know|assess|infer|diagnose|label)\w*|"
    r"(?:insufficient|not enough|n't enough|limited) (?:information|context|evidence|data)|"
    r"to (?:determine|tell|say|know|conclude) (?:if|whether))\b",
    re.IGNORECASE,
)
# Clause boundaries that change what a negation or a mention applies to.
CLAUSE_SPLIT = re.compile(
    r"[;:]|(?:,\s*|\s+)(?=(?:but|however|yet|whereas|although|though|even though|while|whilst)\b)"
    r"|\s+-\s+|\s+—\s+",
    re.IGNORECASE,
)
CONTRAST = re.compile(r"^\W*(?:but|however|yet)\b", re.IGNORECASE)
CONCESSIVE = re.compile(
    r"^\W*(?:although|though|even though|even if|while|whilst|despite|whereas)\b", re.IGNORECASE
)
LABEL_CUE = re.compile(
    r"\b(?:label\w*|categor\w*|classif\w*|falls? (?:under|into|within)|answer\w*|predict\w*"
    r"|verdict|diagnos\w*|related to|stress cause|cause of (?:the )?(?:stress|depression)"
    r"|causes? (?:is|would be|are)|(?:mental )?disorder symptoms? (?:of|is|are)|i would say"
    r"|best (?:describes?|fits?)|most (?:likely|appropriate|fitting)"
    r"|primary (?:cause|focus|issue))\b",
    re.IGNORECASE,
)
# A statement of the category ("falls under the category of X", "falling under X", "can be
# categorised as X", "the cause is X"): within its sentence the class it names decides over
# keywords named before it ("... their relationship with their brother, falling under the
# category of family issues").
CATEGORY = re.compile(
    r"\b(?:falls?|falling|fell)\s+(?:\w+\s+)?(?:under|into|within)\b"
    r"|\bfit(?:s|ting)?\s+(?:\w+\s+)?(?:under|into|within)\s+(?:the\s+)?(?:category|class)"
    r"|\b(?:categori[sz]\w*|classif\w*|label\w*)\s+(?:[\w'-]+\s+){0,5}?as\b"
    r"|\b(?:category|label)\s+of\b"
    r"|\b(?:category|label|cause|classification)\b(?:\s+[\w'-]+){0,6}?\s+(?:is|would be)\b",
    re.IGNORECASE,
)
CONCLUSION = re.compile(
    r"^\W*(?:therefore|thus|hence|so|overall|in conclusion|in summary|to summari[sz]e|"
    r"to conclude|consequently|as a result|all in all|ultimately|in short|based on|given)\b",
    re.IGNORECASE,
)
ANSWER_START = re.compile(
    r"^\W*(?:yes|no|this post shows|the post shows|the poster (?:does|suffers|is)|"
    r"(?:final\s+)?(?:answer|label|prediction|classification|category)\s*\**\s*[:\-=])",
    re.IGNORECASE,
)
EXPLICIT_YES_NO = re.compile(
    r"\b(?:answer|label|prediction|verdict|response|classification)\b[^.?!]{0,40}?"
    r"(?:\bis\b|:|\bwould be\b|=|\bas\b)\s*[\"'*`]*\s*(yes|no)\b",
    re.IGNORECASE,
)

# A first sentence the answer-slot rule takes only because it starts like the IMHI label
# sentence ("The poster is ...", "The poster does ..."): prose, not a stated answer.
PROSE_SLOT = re.compile(r"^\W*the poster (?:does|suffers|is)\b", re.IGNORECASE)


def clauses(sentence: str) -> list[tuple[str, bool]]:
    """Clauses of a sentence with a flag saying whether each is concessive.  A concessive
    clause runs to its first comma ("Although X, Y": X concessive, Y the main clause)."""
    out: list[tuple[str, bool]] = []
    for part in CLAUSE_SPLIT.split(sentence):
        if not part or not part.strip():
            continue
        if CONCESSIVE.match(part):
            head, comma, tail = part.partition(",")
            out.append((head, True))
            if comma and tail.strip():
                out.append((tail, False))
        else:
            out.append((part, False))
    return out
