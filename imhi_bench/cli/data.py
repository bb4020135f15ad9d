"""`imhi-bench data check` and `imhi-bench data fetch`."""

from __future__ import annotations

import argparse

from imhi_bench.benchmark.sets import FORMATS, NON_CLINICAL_NOTICE
from imhi_bench.cli.options import add_data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check or download the IMHI data files",
                       description="Check or download the released IMHI files.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    c = dsub.add_parser(
        "check",
        help="table of set x format with row count and sha256",
        description=(
            "List every IMHI set in every format with its row count and sha256, whether it "
            "matches the MentaLLaMA release, and for each missing file where to put it. "
            "Exits 1 if a file is invalid, 0 otherwise (missing files are guidance, not errors)."
        ),
    )
    add_data_dir(c)
    c.add_argument("--sets", metavar="A,B", help="comma list of sets (default: all)")
    c.add_argument("--formats", metavar="A,B", help=f"comma list of {', '.join(FORMATS)}")
    c.set_defaults(func=run_check)

    f = dsub.add_parser(
        "fetch",
        help="download the released files (MentaLLaMA repo, pinned commit), verified by sha256",
        description=(
            "Download the released IMHI files from the MentaLLaMA GitHub repository pinned at "
            "one commit, verify each against the recorded sha256, write atomically, and skip "
            "files already present and correct.  SWMH test and CLP are not released there."
        ),
    )
    f.add_argument("--dest", metavar="DIR",
                   help="where to put the files (default: $IMHI_DATA_DIR, else a per-user "
                   "cache dir)")
    f.add_argument("--base-url", metavar="URL",
                   help="mirror of the repository at the pinned commit (default: GitHub raw; "
                   "env IMHI_DATA_BASE_URL)")
    f.add_argument("--sets", metavar="A,B", help="comma list of sets (default: all)")
    f.add_argument("--formats", metavar="A,B", help=f"comma list of {', '.join(FORMATS)}")
    f.add_argument("--no-train", action="store_true", help="skip the train/val files")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
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
    from imhi_bench.benchmark.data import check, resolve_data_dir
    from imhi_bench.benchmark.sets import parse_set_list
    from imhi_bench.scoring.report import table

    root = resolve_data_dir(args.data_dir)
    statuses = check(root, parse_set_list(args.sets), _formats(args.formats))
    print(f"IMHI data dir: {root}")
    if not root.is_dir():
        print(f"(it does not exist: run `imhi-bench data fetch --dest {root}`, or point "
              "--data-dir / $IMHI_DATA_DIR at your copy)")
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
    ok = sum(s.state == "ok" for s in statuses)
    print(f"\n{ok} of {len(statuses)} files match the MentaLLaMA release.")
    print(NON_CLINICAL_NOTICE)
    return 1 if any(s.state == "invalid" for s in statuses) else 0


def run_fetch(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.data import resolve_data_dir
    from imhi_bench.benchmark.fetch import fetch, selector
    from imhi_bench.benchmark.sets import parse_set_list

    sets = [s.name for s in parse_set_list(args.sets)] if args.sets else None
    root = resolve_data_dir(args.dest)
    results = fetch(root, base_url=args.base_url,
                    only=selector(sets, _formats(args.formats), not args.no_train),
                    timeout=args.timeout)
    failed = [r for r in results if r.state == "failed"]
    counts = {st: sum(r.state == st for r in results) for st in ("downloaded", "present")}
    for r in failed:
        print(f"- {r.path}: {r.message}")
    print(f"{counts['downloaded']} downloaded, {counts['present']} already present, "
          f"{len(failed)} failed, into {root}")
    print("SWMH test and CLP are not released by MentaLLaMA: `imhi-bench data check` says "
          "where to put them.")
    return 1 if failed else 0
