"""IMHI data files: where they live, loading with validation, and `data check`.

The data dir is resolved as `--data-dir` > `$IMHI_DATA_DIR` > a per-user cache dir, and
holds the released files in MentaLLaMA's layout (see `imhi_bench.benchmark.sets.FORMATS`).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark import release
from imhi_bench.benchmark.sets import FORMATS, GOLD_COLUMN, QUERY_COLUMN, ImhiSet, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file, unreadable

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


def fetch_command(data_dir: Path) -> str:
    """The `data fetch` command that fills *this* data dir: `--dest` unless it is the
    per-user default (and $IMHI_DATA_DIR is unset), where a bare `data fetch` puts them."""
    if not os.environ.get(DATA_DIR_ENV) and Path(data_dir).expanduser() == default_data_dir():
        return "imhi-bench data fetch"
    return f"imhi-bench data fetch --dest {shlex.quote(str(data_dir))}"


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
    except OSError as e:  # permissions, an I/O error
        raise unreadable(path, e) from None
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
    # strict: a quoted field still open at the end of the file (a truncated download) is an
    # error, where the lenient reader would return the cut text as the field's value.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    damaged = ("the file is truncated or damaged: re-download it with `imhi-bench data "
               "fetch` (or re-save it as CSV)")
    try:
        header = next(reader, [])
        missing = [c for c in required if c not in header]
        if missing:
            raise ImhiError(
                f"{path} lacks column(s) {', '.join(repr(c) for c in missing)} "
                f"(has {', '.join(repr(c) for c in header)}): expected {', '.join(required)}"
            )
        rows = []
        for record in reader:
            if not record:  # a blank line, skipped as DictReader does
                continue
            if len(record) != len(header):
                # a short row is what a file cut off mid-row looks like; its missing fields
                # would otherwise be read as empty and fail only after generation
                raise ImhiError(f"{path} line {reader.line_num} has {len(record)} field(s), "
                                f"the header {len(header)}: {damaged}")
            rows.append(dict(zip(header, record, strict=True)))
    except csv.Error as e:
        raise ImhiError(f"{path} is not a valid CSV file (line {reader.line_num}: {e}): "
                        f"{damaged}") from None
    if not rows:
        raise ImhiError(f"{path} has a header but no rows")
    return rows


def missing_file_message(s: ImhiSet, fmt: str, data_dir: Path) -> str:
    """Guidance for an absent test file: the fetch command for this data dir when the file
    is in the release, else why it is not (CLP was never released, and the expert set has
    no file for it) and where a copy built elsewhere goes."""
    rel = s.path(fmt)
    where = data_dir / rel
    if rel in release.release_manifest():
        fetch = fetch_command(data_dir)
        return f"IMHI {s.name} {fmt} file is missing: put it at {where} (run `{fetch}`)"
    if fmt == "expert":
        return (f"IMHI has no {s.name} expert file: MentaLLaMA's expert-written examples do "
                f"not cover {s.name} (use the instruction or completion format)")
    how = s.obtain or "it was never released by MentaLLaMA"
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
            f"(run `{fetch_command(root)}`)"
        )
    cols = (QUERY_COLUMN, GOLD_COLUMN) if fmt == "instruction" else ("post", "question", "response")
    return read_csv(path, cols)


def present_splits(
    set_name: str, fmt: str = "instruction", data_dir: str | os.PathLike | None = None
) -> list[str]:
    """The released train/val splits of a set whose file is in the data dir, train first.
    A copy without Irf's or MultiWD's train file (the release has them) still serves their
    val file, as before those files were known."""
    s = get_set(set_name)
    root = resolve_data_dir(data_dir)
    return [split for split, paths in s.train_files.items() if (root / paths[fmt]).is_file()]


def load_pairs(
    set_name: str, split: str, fmt: str = "instruction", data_dir: str | os.PathLike | None = None
) -> list[tuple[str, str]]:
    """(query, gold response) of each row of a released train/val file: the instruction
    query, or the completion post + question (the shape of `test_complete`'s queries)."""
    rows = load_split(set_name, split, fmt, data_dir)
    if fmt == "instruction":
        return [(r[QUERY_COLUMN], r[GOLD_COLUMN]) for r in rows]
    return [(r["post"] + r["question"], r["response"]) for r in rows]


@dataclass(frozen=True)
class FileStatus:
    set: str
    fmt: str
    path: Path
    # ok | modified | invalid (present) | unrecorded (present, not in the release) |
    # missing (released, absent: `data fetch` gets it) | unreleased (absent, never released)
    state: str
    rows: int | None = None
    sha256: str | None = None  # always sha256, whatever the manifest verifies by: provenance
    message: str = ""

    @property
    def present(self) -> bool:
        return self.state not in ("missing", "unreleased")

    @property
    def failed(self) -> bool:
        """A present file that fails its check: unreadable, or not the released bytes."""
        return self.state in ("invalid", "modified")


def file_status(s: ImhiSet, fmt: str, data_dir: Path) -> FileStatus:
    rel = s.path(fmt)
    path = data_dir / rel
    recorded = release.release_manifest().get(rel)
    if not path.is_file():
        return FileStatus(s.name, fmt, path, "missing" if recorded else "unreleased",
                          message=missing_file_message(s, fmt, data_dir))
    try:
        rows = len(read_csv(path, (QUERY_COLUMN, GOLD_COLUMN)))
    except ImhiError as e:
        try:
            digest = sha256_file(path)
        except ImhiError:  # unreadable: read_csv's message says so
            digest = None
        return FileStatus(s.name, fmt, path, "invalid", sha256=digest, message=str(e))
    digest = sha256_file(path)
    if recorded is None:
        state = "unrecorded"
        msg = "not in the MentaLLaMA release manifest: provenance records its sha256"
    elif not (v := release.verify(path, recorded)).ok:
        state = "modified"
        msg = (f"differs from the released file ({v.describe()}): results will not compare "
               f"to the paper's; `{fetch_command(data_dir)}` replaces it")
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


def post_key(query: str) -> str:
    """The post of a released query, whitespace-normalised: what identifies a sample across
    files and formats."""
    return " ".join(split_post(query)[1].split())


@functools.lru_cache(maxsize=4)
def _test_post_keys(files: tuple[tuple[Path, int], ...]) -> frozenset[str]:
    return frozenset(post_key(r[QUERY_COLUMN]) for path, _ in files
                     for r in read_csv(path, (QUERY_COLUMN, GOLD_COLUMN)))


def test_posts(data_dir: str | os.PathLike | None = None) -> frozenset[str]:
    """`post_key` of every post of every released test file present (`test_data`: every
    set, instruction and completion formats); read once per version of those files."""
    from imhi_bench.benchmark.sets import SETS

    root = resolve_data_dir(data_dir).resolve()
    paths = [root / s.path(fmt) for s in SETS.values() for fmt in ("instruction", "completion")]
    return _test_post_keys(tuple((p, p.stat().st_mtime_ns) for p in paths if p.is_file()))


@dataclass(frozen=True)
class DemoPool:
    """Where a task's few-shot demonstrations come from (`demonstration_pool`)."""

    set: str
    fmt: str
    source: str | None  # "train", "val", "expert", or None: no demonstration available
    files: tuple[str, ...]  # data-relative paths read
    rows: tuple[tuple[str, str], ...]  # (query, gold response) in the task's format
    dropped: int = 0  # rows left out: their post is a test post (or, expert, not convertible)


def demonstration_pool(set_name: str, fmt: str = "instruction",
                       data_dir: str | os.PathLike | None = None) -> DemoPool:
    """The rows few-shot demonstrations of a task (set, format) are drawn from: the set's
    train split, else its val split, else its expert examples
    (`human_evaluation/test_instruction_expert`), never a row whose post is a test post
    (`test_posts`, plus the task's own file for the expert format, whose test set it is).
    Rows are in the task's format: the completion copy of a split for completion tasks
    (expert rows rewritten by `_as_completion`), the instruction copy otherwise."""
    s = get_set(set_name)
    root = resolve_data_dir(data_dir)
    excluded = test_posts(root)
    if fmt == "expert" and (root / s.path(fmt)).is_file():
        excluded = excluded | {post_key(e.query) for e in load_examples(s.name, fmt, root)}
    row_fmt = "completion" if fmt == "completion" else "instruction"
    for split, paths in s.train_files.items():  # train before val, as released
        if not (root / paths[row_fmt]).is_file():
            continue
        rows = load_pairs(s.name, split, row_fmt, root)
        kept = [r for r in rows if post_key(r[0]) not in excluded]
        if kept:
            return DemoPool(s.name, fmt, split, (paths[row_fmt],), tuple(kept),
                            len(rows) - len(kept))
    if not (root / s.path("expert")).is_file():
        return DemoPool(s.name, fmt, None, (), ())
    rows = [(e.query, e.gold) for e in load_examples(s.name, "expert", root)]
    kept = [r for r in rows if post_key(r[0]) not in excluded]
    files: tuple[str, ...] = (s.path("expert"),)
    if row_fmt == "completion" and kept:
        kept = _as_completion(s, kept, root)
        files += (s.path("instruction"), s.path("completion"))
    return DemoPool(s.name, fmt, "expert" if kept else None, files, tuple(kept),
                    len(rows) - len(kept))


def _as_completion(s: ImhiSet, rows: list[tuple[str, str]],
                   root: Path) -> list[tuple[str, str]]:
    """Instruction-format (query, gold) rows in the completion format, with the wording the
    set's test files pair (row i of test_instruction is row i of test_complete): the
    completion question of each instruction question, and the commonest completion answer
    (`no. `) of each instruction answer sentence (`No, the poster does not ... `), before
    the shared "Reasoning: ...".  Rows with a question or answer never paired are left out;
    none comes back when either test file is absent."""
    from collections import Counter, defaultdict

    if not all((root / s.path(f)).is_file() for f in ("instruction", "completion")):
        return []
    questions: dict[str, Counter] = defaultdict(Counter)
    answers: dict[str, Counter] = defaultdict(Counter)
    for i, c in zip(load_examples(s.name, "instruction", root),
                    load_examples(s.name, "completion", root), strict=False):
        questions[split_post(i.query)[2]][split_post(c.query)[2]] += 1
        answers[_answer(i.gold)[0]][_answer(c.gold)[0]] += 1
    out = []
    for query, gold in rows:
        question, (answer, reasoning) = split_post(query)[2], _answer(gold)
        if question in questions and answer in answers:
            out.append(("Post: " + split_post(query)[1]
                        + questions[question].most_common(1)[0][0],
                        answers[answer].most_common(1)[0][0] + reasoning))
    return out


def _answer(gold: str) -> tuple[str, str]:
    """(answer, "Reasoning: ...") of a released gold response."""
    at = gold.find("Reasoning:")
    return (gold[:at], gold[at:]) if at >= 0 else ("", gold)
