"""The rows a recipe trains and validates on, read from the released IMHI train data.

Instruction format: `query` -> `gpt-3.5-turbo` (the MentaLLaMA models); completion format:
`post + question` -> `response` (MentalBART, MentalT5), which is exactly the shape of
`test_complete`'s queries.  Rows whose post also occurs in any released test file (any set,
any format) are dropped, and counted: two dreaddit train queries are dreaddit test queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imhi_bench.benchmark.data import load_pairs, post_key, read_csv, resolve_data_dir, test_posts
from imhi_bench.benchmark.sets import (
    GOLD_COLUMN,
    QUERY_COLUMN,
    SETS,
    UNSEEN_SETS,
    get_set,
)
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file
from imhi_bench.core.sample import seeded_sample

GROUPS = {"imhi": tuple(SETS), "imhi_general": tuple(s for s in SETS if s not in UNSEEN_SETS)}


@dataclass(frozen=True)
class Example:
    set: str
    query: str  # the text the prompt is made of (instruction query, or post + question)
    response: str  # the gold response the model learns to write


@dataclass
class TrainData:
    train: list[Example]
    val: list[Example]
    files: dict[str, str] = field(default_factory=dict)  # data-relative path -> sha256
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # set -> counts
    notes: list[str] = field(default_factory=list)  # sets skipped from a group


def split_path(set_name: str, split: str, fmt: str) -> str:
    """Where a set's train/val file is in the release layout (the released name where
    `imhi_bench.benchmark.sets` records one, else the release's usual `<split>.csv`)."""
    s = get_set(set_name)
    if split in s.train_files:
        return s.train_files[split][fmt]
    folder = "instruction_data" if fmt == "instruction" else "complete_data"
    return f"train_data/{folder}/{s.name}/{split}.csv"


def _has(set_name: str, split: str, fmt: str, root: Path) -> bool:
    return (split in get_set(set_name).train_files
            and (root / split_path(set_name, split, fmt)).is_file())


def _missing(set_name: str, fmt: str, root: Path) -> str:
    return (f"{set_name} has no {fmt} train data under {root}: put its train file at "
            f"{root / split_path(set_name, 'train', fmt)} (run `imhi-bench data fetch` for the "
            "released ones)")


def resolve_sets(spec: tuple[str, ...], fmt: str, root: Path) -> tuple[list[str], list[str]]:
    """(sets to train on, notes on sets of a group skipped for lack of train data).  A set
    named on its own must have its train file."""
    chosen: list[str] = []
    notes: list[str] = []
    for item in spec:
        key = item.strip().lower()
        if key in GROUPS:
            for name in GROUPS[key]:
                if _has(name, "train", fmt, root):
                    chosen.append(name)
                else:
                    notes.append(f"skipping {name}: {_missing(name, fmt, root)}")
            continue
        name = get_set(item).name
        if not _has(name, "train", fmt, root):
            raise ImhiError(_missing(name, fmt, root))
        chosen.append(name)
    chosen = list(dict.fromkeys(chosen))
    if not chosen:
        raise ImhiError(f"no {fmt} train data for any set of {', '.join(spec)} under {root}: run "
                        "`imhi-bench data fetch`, or point data_dir / $IMHI_DATA_DIR at your copy")
    return chosen, notes


def held_out_posts(root: Path) -> frozenset[str]:
    """`post_key` of every released test post: the test files of every set and format, and
    the expert files (the human evaluation's test set)."""
    expert = {post_key(r[QUERY_COLUMN]) for s in SETS.values()
              if (root / s.path("expert")).is_file()
              for r in read_csv(root / s.path("expert"), (QUERY_COLUMN, GOLD_COLUMN))}
    return test_posts(root) | expert


def _rows(set_name: str, split: str, fmt: str, root: Path) -> list[Example]:
    return [Example(set_name, query, gold)
            for query, gold in load_pairs(set_name, split, fmt, root)]


def load_train_data(sets: tuple[str, ...], fmt: str, *, data_dir: str | None = None,
                    max_train: int | None = None, max_val: int | None = None,
                    seed: int = 0) -> TrainData:
    """Train and val rows of `sets` in `fmt`, without rows whose post is in a test set."""
    root = resolve_data_dir(data_dir)
    names, notes = resolve_sets(sets, fmt, root)
    in_test = held_out_posts(root)
    data = TrainData([], [], notes=notes)
    for name in names:
        counts = {}
        for split in ("train", "val"):
            if not _has(name, split, fmt, root):
                counts[split] = 0
                continue
            rel = split_path(name, split, fmt)
            data.files[rel] = sha256_file(root / rel)
            rows = _rows(name, split, fmt, root)
            kept = [r for r in rows if post_key(r.query) not in in_test]
            counts[split] = len(kept)
            counts[f"{split}_dropped_in_test"] = len(rows) - len(kept)
            (data.train if split == "train" else data.val).extend(kept)
        data.counts[name] = counts
    data.train = seeded_sample(data.train, max_train, seed)
    data.val = seeded_sample(data.val, max_val, seed)
    if not data.train:
        raise ImhiError("no training rows are left after dropping those in the test sets")
    return data
