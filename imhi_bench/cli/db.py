"""`imhi-bench db init|upgrade`: create, upgrade and seed the results store; and the
`--db` / `--no-db` options every command that records results shares."""

from __future__ import annotations

import argparse

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.options import add_db_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "db", help="create or upgrade the results store",
        description="Manage the results store the leaderboard reads (SQLite by default; any "
        "SQLAlchemy URL, e.g. PostgreSQL for a shared deployment).",
    )
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create the store if needed, upgrade it, and (re)load the paper rows",
        description="Create the store (or upgrade it to this version's schema) and load the "
        "weighted F1 the MentaLLaMA paper reports (Tables 2 and 3) as 'reported' rows.  Safe "
        "to repeat: the reported rows are refreshed, reproduced runs are left alone.",
    )
    add_db_args(init)
    init.set_defaults(func=run_init)
    upgrade = actions.add_parser(
        "upgrade", help="upgrade the store to this version's schema",
        description="Apply the schema migrations this version of imhi-bench ships; no rows "
        "are added (db init loads the paper's rows).",
    )
    add_db_args(upgrade)
    upgrade.set_defaults(func=run_upgrade)


def run_init(args: argparse.Namespace) -> int:
    from imhi_bench.store.engine import display_url, make_engine, resolve_db_url, upgrade_schema
    from imhi_bench.store.reported import load_reported

    url = resolve_db_url(args.db)
    engine = make_engine(url)
    before, after = upgrade_schema(engine)
    count = load_reported(engine)
    state = "created" if before is None else ("upgraded" if before != after else "up to date")
    print(f"store {display_url(url)}: {state} (schema {after}); "
          f"{count} paper-reported runs loaded")
    print(NON_CLINICAL_NOTICE)
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    from imhi_bench.store.engine import display_url, make_engine, resolve_db_url, upgrade_schema

    url = resolve_db_url(args.db)
    before, after = upgrade_schema(make_engine(url))
    if before == after:
        print(f"store {display_url(url)}: already at schema {after}")
    else:
        print(f"store {display_url(url)}: schema {before or '(new)'} -> {after}")
    print(NON_CLINICAL_NOTICE)
    return 0
