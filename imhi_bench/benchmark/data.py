"""IMHI data files: where they live, loading with validation, and `data check`.

The data dir is resolved as `--data-dir` > `$IMHI_DATA_DIR` > a per-user cache dir, and
holds the released files in MentaLLaMA's layout (see `imhi_bench.benchmark.sets.FORMATS`).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from imhi_bench.benchmark.sets import FORMATS, GOLD_COLUMN, QUERY_COLUMN, ImhiSet, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file

DATA_DIR_ENV = "IMHI_DATA_DIR"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # posts can be long


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("imhi-bench")) / "imhi"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir` if given, else `$IMHI_DATA_DIR`, else the per-user cache dir."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return default_data_dir()


@functools.lru_cache(maxsize=1)
def release_manifest() -> dict[str, dict]:
    """sha256 and size of every released file, recorded from the MentaLLaMA release."""
    text = resources.files(__package__).joinpath("release_manifest.json").read_text("utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Example:
    set: str
    fmt: str
    doc_id: int  # 0-based row index in the released file
    query: str
    gold: str


def read_csv(path: str | os.PathLike, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Read a CSV into dicts, failing with one line on the problems users actually hit."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImhiError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImhiError(f"{path} is a folder, expected a CSV file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImhiError(
            f"{path} is not UTF-8 text (bad byte at offset {e.start}): re-save it as UTF-8 "
            "or re-download it with `imhi-bench data fetch`"
        ) from None
    if not text.strip():
        raise ImhiError(
            f"{path} is empty: expected a header row with columns {', '.join(required)}"
        )
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise ImhiError(
                f"{path} lacks column(s) {', '.join(repr(c) for c in missing)} "
                f"(has {', '.join(repr(c) for c in header)}): expected {', '.join(required)}"
            )
        rows = [{k: (v if v is not None else "") for k, v in r.items() if k is not None}
                for r in reader]
    except csv.Error as e:
        raise ImhiError(f"{path} is not a valid CSV file ({e})") from None
    if not rows:
        raise ImhiError(f"{path} has a header but no rows")
    return rows


def missing_file_message(s: ImhiSet, fmt: str, data_dir: Path) -> str:
    where = data_dir / s.path(fmt)
    how = s.obtain or "run `imhi-bench data fetch` or copy it from the MentaLLaMA release"
    return f"IMHI {s.name} {fmt} file is missing: put it at {where} ({how})"


def test_file(set_name: str, fmt: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of a set's test file, with a guidance error if it is not there."""
    s = get_set(set_name)
    root = resolve_data_dir(data_dir)
    path = root / s.path(fmt)
    if not path.is_file():
        raise ImhiError(missing_file_message(s, fmt, root))
    return path


def load_examples(
    set_name: str, fmt: str = "instruction", data_dir: str | os.PathLike | None = None
) -> list[Example]:
    """All rows of one set in one format, validated."""
    s = get_set(set_name)
    path = test_file(s.name, fmt, data_dir)
    rows = read_csv(path, (QUERY_COLUMN, GOLD_COLUMN))
    return [
        Example(s.name, fmt, i, r[QUERY_COLUMN], r[GOLD_COLUMN]) for i, r in enumerate(rows)
    ]


def load_split(
    set_name: str, split: str, fmt: str = "instruction", data_dir: str | os.PathLike | None = None
) -> list[dict[str, str]]:
    """Rows of a released train/val file ('query'/'gpt-3.5-turbo' for instruction,
    'post'/'question'/'response' for completion)."""
    s = get_set(set_name)
    if split not in s.train_files:
        have = ", ".join(s.train_files) or "none"
        raise ImhiError(
            f"IMHI has no released {split!r} split for {s.name} (released: {have})"
        )
    root = resolve_data_dir(data_dir)
    path = root / s.train_files[split][fmt]
    if not path.is_file():
        raise ImhiError(
            f"IMHI {s.name} {split} file is missing: put it at {path} "
            "(run `imhi-bench data fetch`)"
        )
    cols = (QUERY_COLUMN, GOLD_COLUMN) if fmt == "instruction" else ("post", "question", "response")
    return read_csv(path, cols)


@dataclass(frozen=True)
class FileStatus:
    set: str
    fmt: str
    path: Path
    state: str  # ok | modified | unrecorded | missing | invalid
    rows: int | None = None
    sha256: str | None = None
    message: str = ""


def file_status(s: ImhiSet, fmt: str, data_dir: Path) -> FileStatus:
    rel = s.path(fmt)
    path = data_dir / rel
    if not path.is_file():
        return FileStatus(s.name, fmt, path, "missing",
                          message=missing_file_message(s, fmt, data_dir))
    digest = sha256_file(path)
    try:
        rows = len(read_csv(path, (QUERY_COLUMN, GOLD_COLUMN)))
    except ImhiError as e:
        return FileStatus(s.name, fmt, path, "invalid", sha256=digest, message=str(e))
    recorded = release_manifest().get(rel)
    if recorded is None:
        state = "unrecorded"
        msg = "not in the MentaLLaMA release manifest: provenance records its sha256"
    elif recorded["sha256"] != digest:
        state = "modified"
        msg = "differs from the released file: results will not compare to the paper's"
    else:
        state, msg = "ok", ""
    return FileStatus(s.name, fmt, path, state, rows, digest, msg)


def check(
    data_dir: str | os.PathLike | None = None,
    sets: list[ImhiSet] | None = None,
    formats: list[str] | None = None,
) -> list[FileStatus]:
    from imhi_bench.benchmark.sets import SETS

    root = resolve_data_dir(data_dir)
    return [
        file_status(s, fmt, root)
        for s in (sets or list(SETS.values()))
        for fmt in (formats or list(FORMATS))
    ]


def data_sha256(set_name: str, fmt: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """sha256 of a set's test file, or None when it is absent (for provenance)."""
    path = resolve_data_dir(data_dir) / get_set(set_name).path(fmt)
    return sha256_file(path) if path.is_file() else None


def identify_file(
    set_name: str, golds: list[str], data_dir: str | os.PathLike | None = None
) -> dict:
    """Which released file (format) a list of gold responses comes from, with its sha256,
    so a score of existing generations still says what data it was computed on."""
    root = resolve_data_dir(data_dir)
    s = get_set(set_name)
    wanted = set(golds)
    for fmt in FORMATS:
        path = root / s.path(fmt)
        if not path.is_file():
            continue
        try:
            rows = read_csv(path, (QUERY_COLUMN, GOLD_COLUMN))
        except ImhiError:
            continue
        released = {r[GOLD_COLUMN] for r in rows}
        if wanted <= released:
            return {
                "format": fmt,
                "data_file": str(path),
                "data_sha256": sha256_file(path),
                "complete": len(golds) == len(rows),
            }
    return {"format": None, "data_file": None, "data_sha256": None, "complete": None}


# The two query shapes of the release: instruction `Consider this post: "<post>" Question: ...`
# and completion `Post: <post> Question: ...` (post + question columns joined).
_POST_PREFIXES = ('Consider this post: "', "Post: ")


def split_post(query: str) -> tuple[str, str, str]:
    """(before, post, after) of a released query, `before + post + after == query`: the
    post is what may be cut when a sample is too long, and what identifies a sample across
    formats.  Every released query of every file has this shape (a test checks)."""
    for prefix in _POST_PREFIXES:
        if query.startswith(prefix):
            end = query.rfind('" Question:' if prefix.endswith('"') else " Question:")
            if end >= len(prefix):
                return prefix, query[len(prefix):end], query[end:]
    raise ImhiError(f"query {query[:60]!r}... has no post in the released shape "
                    '(Consider this post: "..." Question: ... or Post: ... Question: ...)')
