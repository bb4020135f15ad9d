"""`imhi-bench protocol show|diff|list`: how a run's numbers were made, and what differs."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_db_args
from imhi_bench.core.errors import ImhiError

RUN_HELP = ("a run folder (its imhi_results.json) or a store run id (a number, or run:ID); "
            "store ids are read from --db")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "protocol", help="show a run's protocol, or what differs between two runs",
        description="A protocol is every choice that moves a number: prompt format, chat "
        "template and system prompt, few-shot K, seed and sampler, decoding, label reader, "
        "metric variants, task version and whether the data are the release's.  Its id is a "
        "hash of them: two runs compare only when their ids are equal, and the leaderboard "
        "ranks one protocol at a time.  Without a run, `show` prints the default protocol "
        "(the paper's, as far as this tool runs it) with where it still differs from the "
        "authors' code.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    show = verbs.add_parser("show", help="print a run's protocol (default: the default one)")
    show.add_argument("target", nargs="?", metavar="RUN_DIR", help=RUN_HELP)
    show.add_argument("--run", type=int, metavar="ID", help="a run id in the results store")
    add_db_args(show)
    diff = verbs.add_parser("diff", help="what differs between two runs' protocols")
    diff.add_argument("a", metavar="A", help=RUN_HELP)
    diff.add_argument("b", metavar="B", help=RUN_HELP)
    add_db_args(diff)
    lst = verbs.add_parser("list", help="the protocols in the results store, with run counts")
    add_db_args(lst)
    p.set_defaults(func=run)


def _from_store(db: str | None, run_id: int):
    from imhi_bench.core.protocol import Protocol
    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run

    factory = open_store(db)
    with factory() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise ImhiError(f"run {run_id} is not in the results store: `imhi-bench protocol "
                            "list` or the leaderboard shows the runs it holds")
        recorded = run.protocol if isinstance(run.protocol, dict) else None
    if recorded is None:
        raise ImhiError(f"run {run_id} has no protocol recorded: open the store with this "
                        "version once (any command does) to fill it in")
    return Protocol.from_json(recorded), f"run {run_id}"


def load(target: str, db: str | None):
    """(Protocol, label) of a run folder, a results file or a store run id."""
    import json
    from pathlib import Path

    from imhi_bench.runs.folder import RESULTS_FILE
    from imhi_bench.scoring.protocol import protocol_of_report

    text = target.strip()
    if text.removeprefix("run:").isdigit() and not Path(text).exists():
        return _from_store(db, int(text.removeprefix("run:")))
    path = Path(text).expanduser()
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise ImhiError(f"{target}: no such run folder or {RESULTS_FILE}; pass a run folder "
                        "(eval's --output) or a store run id")
    try:
        report = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ImhiError(f"{file}: not a readable results file ({e.__class__.__name__})") \
            from None
    protocol = protocol_of_report(report) if isinstance(report, dict) else None
    if protocol is None:
        raise ImhiError(f"{file} records no protocol (written before protocols): re-score "
                        f"it with `imhi-bench score --predictions {path}` to get one")
    return protocol, str(path)


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")


def show(args: argparse.Namespace) -> None:
    from imhi_bench.scoring.protocol import DEVIATIONS, default_protocol, describe

    if args.target and args.run is not None:
        raise ImhiError("give a run folder or --run ID, not both")
    if args.run is not None:
        protocol, where = _from_store(args.db, args.run)
    elif args.target:
        protocol, where = load(args.target, args.db)
    else:
        protocol, where = default_protocol(), None
    print(f"Protocol of {where}:" if where else "The default protocol (the paper's, as far "
          "as this tool runs it):")
    _print_rows(describe(protocol))
    if where is None:
        print("\nWhere it still differs from the authors' code (MentaLLaMA src/IMHI.py, "
              "label_inference.py, score.py):")
        for key, why in DEVIATIONS.items():
            print(f"- {key}: {why}")


def diff(args: argparse.Namespace) -> None:
    from imhi_bench.core.protocol import differences
    from imhi_bench.scoring.protocol import protocol_name

    (a, wa), (b, wb) = load(args.a, args.db), load(args.b, args.db)
    print(f"A: {wa}  protocol {a.id} ({protocol_name(a)})")
    print(f"B: {wb}  protocol {b.id} ({protocol_name(b)})")
    changed = differences(a, b)
    if not changed:
        print("Same protocol: their numbers compare.")
        return
    rows = [(k, f"{va!r}  ->  {vb!r}") for k, va, vb in changed]
    print(f"{len(changed)} field{'' if len(changed) == 1 else 's'} differ: their numbers do "
          "not compare directly.")
    _print_rows(rows)


def list_protocols(args: argparse.Namespace) -> None:
    from imhi_bench.leaderboard.data import load_runs
    from imhi_bench.leaderboard.protocols import REPORTED_NAME, protocol_choices
    from imhi_bench.store.engine import open_store, store_engine

    runs = load_runs(store_engine(open_store(args.db)))
    for c in protocol_choices(runs):
        print(f"{c.id}  {c.runs:>5} run{' ' if c.runs == 1 else 's'}  {c.name}")
    paper = int((runs["source"] == "reported").sum())
    if paper:
        print(f"(and {paper} reported rows of the paper: {REPORTED_NAME})")


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE

    {"show": show, "diff": diff, "list": list_protocols}[args.verb](args)
    print()
    print(NON_CLINICAL_NOTICE)
    return 0
