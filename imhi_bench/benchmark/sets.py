"""The ten IMHI test sets: names, tasks, classes and released file locations.

This is the single place that knows which sets exist.  Everything else (labels, tasks,
metrics, the store, the leaderboard) looks sets up here.  Names are spelled exactly as the
released MentaLLaMA files spell them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imhi_bench.core.errors import ImhiError

# The three evaluation formats and the folder (relative to the data dir) that holds each.
FORMATS: dict[str, str] = {
    "instruction": "test_data/test_instruction",
    "completion": "test_data/test_complete",
    "expert": "human_evaluation/test_instruction_expert",
}

# Columns every released test/expert file has: the prompt and the gold response.
QUERY_COLUMN = "query"
GOLD_COLUMN = "gpt-3.5-turbo"

NON_CLINICAL_NOTICE = (
    "Results are for non-clinical research only: they are not a diagnosis, and no model "
    "here may be used to screen, diagnose or treat anyone."
)


@dataclass(frozen=True)
class ImhiSet:
    name: str  # as the released files spell it
    slug: str  # lower-case, no punctuation: used in task names (imhi_<slug>)
    task: str
    classes: tuple[str, ...]  # index order = the paper's released classifier output index
    description: str
    # split -> format -> path relative to the data dir, only where the split is released
    train_files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # why a file may be missing and how to get it (CLP: never released by MentaLLaMA)
    obtain: str = ""

    @property
    def binary(self) -> bool:
        return self.classes == ("no", "yes")

    def path(self, fmt: str) -> str:
        """Path of this set's test file in `fmt`, relative to the data dir."""
        if fmt not in FORMATS:
            raise ImhiError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return f"{FORMATS[fmt]}/{self.name}.csv"


_BINARY = ("no", "yes")


def _train(name: str, complete: dict[str, str], splits: tuple[str, ...]) -> dict:
    """Train/val file paths: the instruction copy is named <split>.csv, the completion
    copy keeps the original data set's file names."""
    return {
        split: {
            "instruction": f"train_data/instruction_data/{name}/{split}.csv",
            "completion": f"train_data/complete_data/{name}/{complete[split]}",
        }
        for split in splits
    }


_SETS = (
    ImhiSet(
        "CAMS", "cams", "depression cause detection",
        ("none", "bias or abuse", "jobs and career", "medication", "relationship", "alienation"),
        "Causes of depression in Reddit posts (6 classes).",
    ),
    ImhiSet(
        "CLP", "clp", "depression detection", _BINARY,
        "CLPsych 2015 depression detection.",
        obtain=(
            "CLP (CLPsych 2015) was never released by MentaLLaMA: its data-use agreement "
            "must be signed with the CLPsych organisers; build the IMHI file from it with "
            "MentaLLaMA's prompts"
        ),
    ),
    ImhiSet(
        "DR", "dr", "depression detection", _BINARY,
        "Depression detection in Reddit posts.",
        train_files=_train("DR", {"train": "reddit_train.csv", "val": "reddit_valid.csv"},
                           ("train", "val")),
    ),
    ImhiSet(
        "dreaddit", "dreaddit", "stress detection", _BINARY,
        "Stress detection in Reddit posts.",
        train_files=_train("dreaddit", {"train": "dreaddit-train.csv", "val": "val.csv"},
                           ("train", "val")),
    ),
    ImhiSet(
        "Irf", "irf", "interpersonal risk factors detection", _BINARY,
        "Thwarted belongingness / perceived burdensomeness risk.",
        train_files=_train("Irf", {"train": "train.csv", "val": "val.csv"},
                           ("train", "val")),
    ),
    ImhiSet(
        "loneliness", "loneliness", "loneliness detection", _BINARY,
        "Loneliness detection in Reddit posts.",
    ),
    ImhiSet(
        "MultiWD", "multiwd", "wellness dimensions detection", _BINARY,
        "Whether a given wellness dimension exists in a post.",
        train_files=_train("MultiWD", {"train": "train.csv", "val": "val.csv"},
                           ("train", "val")),
    ),
    ImhiSet(
        "SAD", "sad", "stress cause detection",
        ("school", "financial problem", "family issues", "social relationships", "work",
         "health issues", "emotion turmoil", "everyday decision making", "other stress causes"),
        "Causes of stress in SMS-like posts (9 classes).",
        train_files=_train("SAD", {"train": "train.csv", "val": "val.csv"}, ("train", "val")),
    ),
    ImhiSet(
        "swmh", "swmh", "mental disorders detection",
        ("depression", "suicide", "anxiety", "bipolar disorder", "no mental disorder"),
        "Mental disorders in Reddit posts (SWMH).",
    ),
    ImhiSet(
        "t-sid", "tsid", "mental disorders detection",
        ("depression", "suicide or self-harm tendency", "PTSD", "no mental disorders"),
        "Mental disorders in tweets (T-SID).",
    ),
)

SETS: dict[str, ImhiSet] = {s.name: s for s in _SETS}
SET_NAMES: tuple[str, ...] = tuple(SETS)

# The paper's IMHI-general held-out tasks (Table 3).
UNSEEN_SETS: tuple[str, ...] = ("CAMS", "dreaddit", "Irf", "t-sid")
# What a model was trained on, as the store records it: all of IMHI's train data, IMHI
# without the unseen sets (the paper's IMHI-general), or anything else.
TRAINING_DATA: tuple[str, ...] = ("IMHI", "IMHI-general", "other")

_BY_KEY = {key: s for s in _SETS for key in (s.name.lower(), s.slug)}


def get_set(name: str) -> ImhiSet:
    """Look a set up by its released name, case-insensitively, or by its slug."""
    found = _BY_KEY.get(name.strip().lower())
    if found is None:
        raise ImhiError(
            f"unknown IMHI set {name!r}: use one of {' '.join(SET_NAMES)}"
        )
    return found


def parse_set_list(text: str | None) -> list[ImhiSet]:
    """'DR,SAD' -> [DR, SAD]; None or 'all' -> every set."""
    if text is None or text.strip().lower() in ("", "all"):
        return list(_SETS)
    return [get_set(part) for part in text.split(",") if part.strip()]
