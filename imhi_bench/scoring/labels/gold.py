"""Reading the class of a *gold* response.  `parse_gold(set, text)` is strict: the label
sentence must be one of the phrasings the released data uses.  `gold_label` falls back to the
free-text reader and fails loudly, naming the row, when neither reads a class, because a
gold label that cannot be read would silently corrupt every score computed against it."""

from __future__ import annotations

import re

from imhi_bench.benchmark.sets import get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.labels.reader import (
    bare_phrase,
    extract_label,
    leading_yes_no,
    normalise,
    split_label_and_reasoning,
)
from imhi_bench.scoring.labels.schema import schema


def parse_gold(set_name: str, text: str) -> str | None:
    """Strict reading of a gold response: its label part must be a released phrasing
    (for binary sets, start with yes/no).  None when it is not."""
    set_name = get_set(set_name).name
    head, _ = split_label_and_reasoning(normalise(text or ""))
    if not head.strip():
        head = text or ""
    if schema(set_name).concept:
        return leading_yes_no(head)
    return bare_phrase(set_name, head)


def gold_label(set_name: str, text: str, where: str = "") -> str:
    """The class of a gold response: strict reading first, then the free-text reader; an
    error naming the row if neither reads a class."""
    found = parse_gold(set_name, text) or extract_label(set_name, text)
    if found is None:
        snippet = re.sub(r"\s+", " ", (text or "")[:80])
        raise ImhiError(
            f"cannot read a {set_name} gold label{' in ' + where if where else ''} from "
            f"{snippet!r}: gold responses must start with the IMHI label sentence"
        )
    return found
