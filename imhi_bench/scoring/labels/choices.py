"""Multiple-choice answers: a response that writes the options out ("A) Alienation B) Jobs
and career ...", "1. PTSD 2. Depression ...", "(a) work (b) school") and then chooses one
("Correct answer: B", "Answer: (C)", "the answer is D", "so D fits best", "option B").

An option list is not a claim, wherever it stands (before a "Reasoning:" marker too).
`find_options` finds the list the response wrote and what each option names (through a
`resolve` callback, so this module knows nothing of classes); `chosen_option` finds the
option the response chooses, outside the list, and resolves its letter or number through
that list, never through a fixed A-I order.  An option may echo a whole gold label sentence
("A. This post shows the stress cause related to work": `resolve` judges its length), and
a catch-all option ("None of the above", "Other") names no class without breaking the
list."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# "A)", "(A)", "A.", "a)", "(a)", "1.", "1)", "(1)" standing on their own
_MARKER = re.compile(
    r"(?:(?<=^)|(?<=[\s:(\[]))(?:\(([A-Ia-i]|[1-9])\)|([A-Ia-i]|[1-9])[.)])(?=\s)", re.MULTILINE
)
# where the last option's text ends when the list shares its line with what follows
_ITEM_END = re.compile(
    r"\n|\s{2,}|[.;!?](?=\s|$)|,\s|\s-\s|(?:^|\s)(?:reasoning|explanation|rationale|answer)\b",
    re.IGNORECASE,
)
# an option is a class name, or a gold label sentence echoed whole (at most 12 words)
_MAX_ITEM_WORDS = 14
# options that name no class but belong to a list of choices
_CATCH_ALL = re.compile(
    r"^(?:(?:none|all|both|neither|any) of (?:the |these |those )?(?:above|options|choices"
    r"|them|these|those)|none|others?|something else|not sure|unsure|unknown|n/a"
    r"|(?:both|neither|either) [a-i1-9] (?:and|nor|or) [a-i1-9])$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Options:
    start: int  # span of the list in the text
    end: int
    classes: dict[str, str]  # marker (upper case) -> class


def _order(token: str) -> int:
    return int(token) if token.isdigit() else ord(token.upper()) - ord("A") + 1


def find_options(text: str, resolve: Callable[[str], str | None]) -> Options | None:
    """The first run of two or more consecutive markers (A, B, C ... or 1, 2, 3 ...) whose
    items each name a class (`resolve`) or are a catch-all ("None of the above"), and name
    at least two classes between them."""
    marks = [(m, m.group(1) or m.group(2)) for m in _MARKER.finditer(text)]
    i = 0
    while i < len(marks):
        m, tok = marks[i]
        if _order(tok) != 1:
            i += 1
            continue
        run = [(m, tok)]
        for m2, tok2 in marks[i + 1:]:
            if (_order(tok2) == _order(run[-1][1]) + 1 and tok2.isdigit() == tok.isdigit()
                    and tok2.isupper() == tok.isupper()):
                run.append((m2, tok2))
            else:
                break
        found = _read_run(text, run, resolve)
        if found is not None:
            return found
        i += len(run)
    return None


def _read_run(text: str, run, resolve) -> Options | None:
    if len(run) < 2:
        return None
    classes: dict[str, str] = {}
    end = run[-1][0].end()
    for k, (m, tok) in enumerate(run):
        if k + 1 < len(run):
            item = text[m.end(): run[k + 1][0].start()]
        else:
            stop = _ITEM_END.search(text, m.end() + 1)
            item = text[m.end(): stop.start() if stop else len(text)]
            end = m.end() + len(item)
        item = item.strip(" \t\n,;.")
        if not item or len(item.split()) > _MAX_ITEM_WORDS:
            return None
        cls = resolve(item)
        if cls is not None:
            classes[tok.upper()] = cls
        elif not _CATCH_ALL.match(item):
            return None
    if len(set(classes.values())) < 2:
        return None
    return Options(run[0][0].start(), end, classes)


_TOKEN = r"(?-i:\(([A-Ia-i1-9])\)|\b([A-I1-9])\b(?:[.)](?!\w))?|\b([a-i])\))"
_MORE = r"(?:\s*(?:,|and|&|or|/)\s*(?-i:\([A-Ia-i1-9]\)|\b[A-I1-9]\b|\b[a-i]\)))*"
# strong forms: an answer slot naming an option, or an option said to fit
_CHOSEN = (
    re.compile(
        r"\b(?:correct|final|best|right|my)?\s*(?:answer|choice|option|selection|label)s?"
        r"\s*(?:is|would be|:|=|-|would be:)\s*(?:option|choice)?\s*" + _TOKEN + _MORE,
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:choose|chose|select|selected|pick|picked|go with|going with)\s+"
        r"(?:option\s+|choice\s+)?" + _TOKEN + _MORE,
        re.IGNORECASE,
    ),
    re.compile(
        r"(?:^|(?<=[\s,:;]))(?:option\s+|choice\s+)?" + _TOKEN + _MORE + r"\s+(?:\([^)]*\)\s+)?"
        r"(?:is|seems|would be|fits|best fits|matches|describes)\s+(?:the\s+)?"
        r"(?:best|most|correct|right|appropriate|closest)",
        re.IGNORECASE,
    ),
)
# weak form: "option B" named anywhere, when no strong form chooses
_NAMED = re.compile(r"\b(?:option|choice)\s+" + _TOKEN, re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"^[^.;,]{0,30}?(?:\bnot\b|n't\b|\bincorrect\b|\bwrong\b)", re.I)


def chosen_option(text: str, options: Options,
                  negated: Callable[[str], bool]) -> tuple[str, str] | None:
    """(class, the sentence that chose it) for the option the response chooses outside its
    list; None when it chooses none.  When two options are chosen at once ("B and D") the
    first named wins, as for two classes named in one sentence."""
    rest = [(text[: options.start], 0), (text[options.end:], options.end)]
    for pattern in (*_CHOSEN, _NAMED):
        for part, _ in rest:
            for m in pattern.finditer(part):
                tok = next((g for g in m.groups() if g), None)
                if tok is None or tok.upper() not in options.classes:
                    continue
                head = part[: m.start()]
                clause = re.split(r"[.!?;]\s|\n", head)[-1]
                if negated(clause) or _NEGATED_AFTER.match(part[m.end():]):
                    continue
                return options.classes[tok.upper()], _sentence_at(part, m.start(), m.end())
    return None


def _sentence_at(text: str, start: int, end: int) -> str:
    left = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start))
    right = min((i for i in (text.find(". ", end), text.find("\n", end)) if i >= 0),
                default=len(text))
    return text[left + 1: right + 1].strip()


def without_options(text: str, options: Options) -> str:
    """The text with the list's own words taken out (a sentence break in their place)."""
    return text[: options.start].rstrip() + "\n" + text[options.end:].lstrip(" .;,\t")
