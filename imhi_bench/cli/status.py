"""`imhi-bench status [ID] [--json]`: the submission queue."""

from __future__ import annotations

import argparse
import json

from imhi_bench.cli.options import add_db_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="show the submission queue",
        description="List submissions (oldest first) with their status: PENDING, RUNNING, "
        "FINISHED (with its run and mean weighted F1) or FAILED (with the reason).  --json "
        'prints a list of {"id", "name", "model", "revision", "status", "runs", "run_id", '
        '"weighted_f1", "complete", "coverage", "error", "submitted", "finished"}, where runs '
        "counts the finished evaluation runs of the submission, run_id is the newest of them, "
        "weighted_f1 its mean weighted F1 (null when there is none), complete whether that run "
        "scored every sample of every set (false for a --limit run, whose score is partial and "
        "not ranked; null when unknown) and coverage why not.",
    )
    p.add_argument("id", nargs="?", metavar="ID", help="one submission only")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_db_args(p)
    p.set_defaults(func=run)


def _when(value) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def as_json(row: dict) -> dict:
    from imhi_bench.queue.jobs import STATUS_FIELDS

    out = {k: row[k] for k in STATUS_FIELDS}
    out["submitted"], out["finished"] = _when(row["submitted"]), _when(row["finished"])
    out["unreadable"] = row["unreadable"]  # stored values that could not be read: None above
    return out


def _scored(row: dict) -> str:
    """Whether the newest run's score covers every sample: a `--limit` run's is partial."""
    if row["run_id"] is None:
        return ""
    return {True: "all", False: "partial"}.get(row["complete"], "unknown")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.core.clock import utcnow
    from imhi_bench.core.errors import ImhiError
    from imhi_bench.queue.jobs import RUNNING, list_submissions, run_ids
    from imhi_bench.store.engine import open_store

    factory = open_store(args.db)
    rows = list_submissions(factory, args.id)
    if args.id is not None and not rows:
        raise ImhiError(f"no submission {args.id!r}: list them with imhi-bench status")
    if args.json:
        print(json.dumps([as_json(r) for r in rows], indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("The queue is empty: queue a model with imhi-bench submit --model PATH_OR_ID "
              "--name NAME")
        print(NON_CLINICAL_NOTICE)
        return 0
    now = utcnow()
    table = [("id", "name", "status", "runs", "run", "wF1", "scored", "submitted", "finished",
              "note")]
    for r in rows:
        note = r["error"] or ""
        if r["status"] == RUNNING and r["heartbeat"] is not None:
            note = (f"on {r['worker']}, heartbeat {_age((now - r['heartbeat']).total_seconds())} "
                    "ago")
        f1 = "" if r["weighted_f1"] is None else f"{r['weighted_f1']:.2f}"
        run = "" if r["run_id"] is None else str(r["run_id"])
        if r["coverage"]:
            note = "; ".join(filter(None, (note, f"{_scored(r)}: {r['coverage']}")))
        if r["unreadable"]:  # a damaged value in the store: shown empty, and said
            note = "; ".join(filter(None, (note, "unreadable in the store: "
                                           + ", ".join(r["unreadable"]))))
        table.append((r["id"], r["name"], r["status"], str(r["runs"]), run, f1, _scored(r),
                      _when(r["submitted"]) or "", _when(r["finished"]) or "", note))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    if args.id is not None:
        r = rows[0]
        print()
        for key in ("model", "revision", "precision", "backend", "adapter", "adapter_revision",
                    "submitter", "attempts", "worker", "manifest"):
            if r[key] not in (None, ""):
                print(f"{key:17} {r[key]}")
        runs = run_ids(factory, r["id"])
        if runs:
            print(f"{'runs':17} {', '.join(map(str, runs))}")
    print(NON_CLINICAL_NOTICE)
    return 0
