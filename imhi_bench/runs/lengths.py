"""The default generation length: long enough for the longest released gold response.

IMHI.py lets a model write up to 2048 tokens (prompt and answer together); a fixed 256 new
tokens would cut about 300 of the 8,169 released gold responses.  The default protocol's
limit ("gold-max") is, per set, the longest released gold response of the task's file in the
model's own tokens (plus a token or two of slack for how the answer joins the prompt), so no
answer of the paper's length is cut; it is capped at half the model's context so a prompt
still fits, and a cap is said.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SLACK = 2  # tokenising an answer after the prompt can take a token more than alone
CHARS_PER_TOKEN_BOUND = 2  # no tokenizer (API backends): an upper bound for English text


def gold_lengths(golds: Sequence[str], tokenizer) -> list[int]:
    """Tokens of each gold response (characters / 2 without a tokenizer)."""
    if tokenizer is None:
        return [-(-len(g) // CHARS_PER_TOKEN_BOUND) for g in golds]
    ids = tokenizer(list(golds), add_special_tokens=False)["input_ids"]
    return [len(x) for x in ids]


def gold_max_tokens(tasks: Sequence[str], data_dir: Path, tokenizer,
                    context: int | None = None) -> tuple[dict[str, int], list[str]]:
    """(task -> max new tokens, notes): the longest gold response of each task's released
    file in `tokenizer`'s tokens plus SLACK, capped at half of `context` (the model's
    maximum length) when that is known."""
    from imhi_bench.benchmark.data import load_examples
    from imhi_bench.tasks.names import parse_task

    limits: dict[str, int] = {}
    notes: list[str] = []
    for task in tasks:
        s, fmt = parse_task(task)
        golds = [e.gold for e in load_examples(s.name, fmt, data_dir)]
        want = max(gold_lengths(golds, tokenizer), default=0) + SLACK
        if context and want > context // 2:
            notes.append(f"{task}: the longest gold response takes {want} tokens; generation "
                         f"is capped at {context // 2}, half the model's {context}-token "
                         "context, so the longest answers may be cut")
            want = context // 2
        limits[task] = want
    return limits, notes
