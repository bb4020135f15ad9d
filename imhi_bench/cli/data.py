"""`imhi-bench data check` and `imhi-bench data fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from imhi_bench.benchmark.sets import FORMATS, NON_CLINICAL_NOTICE
from imhi_bench.cli.options import add_data_dir

if TYPE_CHECKING:
    from imhi_bench.benchmark.data import FileStatus


def register(sub: argparse._SubParsersAction) -> None:
    from imhi_bench.benchmark.fetch import DEFAULT_DEADLINE, DEFAULT_TIMEOUT, MIN_RATE

    p = sub.add_parser("data", help="check or download the IMHI data files",
                       description="Check or download the released IMHI files.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    c = dsub.add_parser(
        "check",
        help="table of set x format with row count, sha256 and whether it is the release",
        description=(
            "List every IMHI set in every format with its row count and sha256, whether it "
            "is the file of the pinned MentaLLaMA release (verified by sha256 or git blob "
            "id), and for each missing file the `imhi-bench data fetch` command that gets "
            "it into this data dir (CLP was never released and has no expert file: it says "
            "where your own copy goes).  Ends with one summary line; exits 1 when no "
            "instruction file is there or a present file is invalid or differs from the "
            "release, 0 otherwise.  It never downloads anything."
        ),
    )
    add_data_dir(c, fetch=None)  # a check reports what is there; it must not fill the dir
    c.add_argument("--sets", metavar="A,B", help="comma list of sets (default: all)")
    c.add_argument("--formats", metavar="A,B", help=f"comma list of {', '.join(FORMATS)}")
    c.set_defaults(func=run_check)

    f = dsub.add_parser(
        "fetch",
        help="download the released files (MentaLLaMA repo, pinned commit), verified",
        description=(
            "Download the released IMHI files (every test and expert file, SWMH's included, "
            "the released train/val files, the DR annotations and the licence) from the "
            "MentaLLaMA GitHub repository pinned at "
            "one commit, verify each against the recorded sha256 or git blob id, write "
            "atomically, and skip files already present and verified.  Failures are "
            "reported once per cause; a connection error (DNS, refused, timeout) stops the "
            "run at once.  CLP was never released: `imhi-bench data check` says where your "
            "copy goes.  Commands that read the data (eval, score, baseline, ...) run this "
            "by themselves on first use, into the per-user dir, when no --data-dir / "
            "$IMHI_DATA_DIR is given and that dir holds no instruction file."
        ),
    )
    f.add_argument("--dest", metavar="DIR",
                   help="where to put the files (default: $IMHI_DATA_DIR, else the per-user "
                   "cache dir the other commands read)")
    f.add_argument("--base-url", metavar="URL",
                   help="mirror of the repository at the pinned commit (default: GitHub raw; "
                   "env IMHI_DATA_BASE_URL)")
    f.add_argument("--sets", metavar="A,B", help="comma list of sets (default: all)")
    f.add_argument("--formats", metavar="A,B", help=f"comma list of {', '.join(FORMATS)}")
    f.add_argument("--no-train", action="store_true", help="skip the train/val files")
    f.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds per network operation (default {DEFAULT_TIMEOUT:g}); a file "
                   f"must arrive within it plus 1 s per {MIN_RATE // 1024} KiB, or the fetch "
                   "stops")
    f.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE, metavar="SECONDS",
                   help="seconds the whole fetch may take; the files verified by then are "
                   f"kept (default {DEFAULT_DEADLINE:g})")
    f.set_defaults(func=run_fetch)


def _formats(text: str | None) -> list[str] | None:
    from imhi_bench.core.errors import ImhiError

    if not text:
        return None
    out = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad:
        raise ImhiError(f"unknown format {bad[0]!r}: use one of {', '.join(FORMATS)}")
    return out


def run_check(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.data import check, fetch_command, resolve_data_dir
    from imhi_bench.benchmark.sets import parse_set_list
    from imhi_bench.scoring.report import table

    root = resolve_data_dir(args.data_dir)
    statuses = check(root, parse_set_list(args.sets), _formats(args.formats))
    print(f"IMHI data dir: {root}")
    rows = [
        [s.set, s.fmt, s.rows if s.rows is not None else "-", s.state, s.sha256 or "-"]
        for s in statuses
    ]
    print(table(["set", "format", "rows", "state", "sha256"], rows))
    notes = [s for s in statuses if s.state != "ok"]
    if notes:
        print()
        for s in notes:
            print(f"- {s.set} {s.fmt}: {s.message}")
    print()
    ok, summary = _check_summary(statuses, root, fetch_command(root))
    print(summary)
    print(NON_CLINICAL_NOTICE)
    return 0 if ok else 1


def _check_summary(statuses: list[FileStatus], root: Path, fetch: str) -> tuple[bool, str]:
    """Whether the data dir passes, and the one line `data check` ends with: the verdict,
    the counts and the fix.  It fails when no instruction file is there (runs need one: the
    default task group; with --formats naming none, any checked file) or a present file is
    invalid or differs from the release."""
    count = {st: sum(s.state == st for s in statuses)
             for st in ("ok", "missing", "unreleased", "modified", "invalid", "unrecorded")}
    counts = f"{count['ok']} of {len(statuses)} files match the MentaLLaMA release" + "".join(
        f", {count[st]} {st}" for st in ("missing", "unreleased", "modified", "invalid",
                                         "unrecorded") if count[st])
    needed = [s for s in statuses if s.fmt == "instruction"] or statuses
    if not any(s.present for s in needed):
        what = "instruction file" if needed is not statuses else "IMHI file"
        there = "" if root.is_dir() else " (the folder does not exist)"
        return False, (f"FAILED: no {what} in {root}{there}: run `{fetch}`, or point "
                       f"--data-dir / $IMHI_DATA_DIR at your copy ({counts})")
    if any(s.failed for s in statuses):
        return False, f"FAILED: {counts}: `{fetch}` replaces the files that differ or are invalid"
    if count["missing"]:
        return True, f"OK: {counts}; `{fetch}` gets the missing ones"
    return True, f"OK: {counts}"


def run_fetch(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.data import resolve_data_dir
    from imhi_bench.benchmark.fetch import failure_lines, fetch, selector
    from imhi_bench.benchmark.sets import parse_set_list

    sets = [s.name for s in parse_set_list(args.sets)] if args.sets else None
    root = resolve_data_dir(args.dest)
    results = fetch(root, base_url=args.base_url,
                    only=selector(sets, _formats(args.formats), not args.no_train),
                    timeout=args.timeout, deadline=args.deadline)
    causes = failure_lines(results)
    for line in causes:
        print(f"- {line}")
    counts = {st: sum(r.state == st for r in results)
              for st in ("downloaded", "present", "failed")}
    print(f"{counts['downloaded']} downloaded, {counts['present']} already present, "
          f"{counts['failed']} failed, into {root}")
    if sets is None or "CLP" in sets:
        print("CLP was never released by MentaLLaMA: `imhi-bench data check` says where your "
              "copy goes.")
    print(NON_CLINICAL_NOTICE)
    return 1 if causes else 0
