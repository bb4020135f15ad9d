"""Which protocols the store holds, for the leaderboard's selector, and the paper's reported
rows as references beside the ranking (their protocol is not ours: MentalBERT labels, prompts
as IMHI.py), never inside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from imhi_bench.leaderboard.data import (
    ALL_PROTOCOLS,
    MEAN_COLUMN,
    OWN_MEAN_COLUMN,
    RANKED_SETS,
    UNKNOWN,
    leaderboard_table,
)
from imhi_bench.scoring.protocol import DEFAULT_ID, REPORTED_NAME


@dataclass(frozen=True)
class ProtocolChoice:
    """A protocol present in the store, for the selector."""

    id: str
    name: str
    runs: int  # finished runs recorded under it
    differences: str  # from the default protocol, in words ("" for the default itself)


def protocol_choices(runs: pd.DataFrame) -> list[ProtocolChoice]:
    """Every protocol of the store's reproduced runs with its run count, the default
    first (listed even with no run), then by count; the paper's rows are not a choice
    (they are references, `reported_table`)."""
    mine = runs[runs["source"] != "reported"]
    counts = mine.groupby("protocol_id").size()
    names = mine.drop_duplicates("protocol_id").set_index("protocol_id")["protocol"]
    out = [ProtocolChoice(DEFAULT_ID, "default", int(counts.get(DEFAULT_ID, 0)), "")]
    for pid, n in counts.sort_values(ascending=False, kind="stable").items():
        if pid == DEFAULT_ID:
            continue
        name = str(names.get(pid, UNKNOWN))
        diff = name.split(" + ", 1)[1] if " + " in name else name
        out.append(ProtocolChoice(str(pid), name, int(n), diff))
    return out


def reported_table(runs: pd.DataFrame, scores: pd.DataFrame,
                   sets: Sequence[str] = RANKED_SETS) -> pd.DataFrame:
    """The paper's reported rows as references beside the ranking, with their protocol
    ("as reported; MentalBERT labels; prompts as IMHI.py"): the same columns as the ranked
    table, never ranked with it."""
    paper = runs[runs["source"] == "reported"]
    if paper.empty:
        return pd.DataFrame(columns=["model", "setting", "protocol", MEAN_COLUMN, *sets])
    table = leaderboard_table(paper, scores, sets=sets, latest_only=False,
                              protocol=ALL_PROTOCOLS)
    table["protocol"] = table["protocol"].replace(UNKNOWN, REPORTED_NAME)
    return table[["model", "setting", "protocol", MEAN_COLUMN, "sets scored",
                  OWN_MEAN_COLUMN, *sets]]
