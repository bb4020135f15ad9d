"""`imhi-bench compare A B`: is B better than A, set by set, beyond noise?  A paired
bootstrap and a permutation test on the samples both runs scored (`scoring.compare`)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.cli.options import add_data_dir, add_db_args
from imhi_bench.core.errors import ImhiError

_RUN_ID = re.compile(r"(?:run:)?(\d+)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="paired significance of two runs' difference (B - A), per set",
        description=(
            "Compare two runs on the samples both scored (same set, same doc ids): per set "
            "and for the mean over the shared sets, B - A in weighted F1, accuracy and macro "
            "F1 with a paired bootstrap 95%% CI and p-value (both runs resampled with the "
            "same indices) and an approximate-randomization (permutation) p-value.  A and B: "
            "anything `score --predictions` reads (a run folder, an IMHI.py CSV folder, "
            "lm-eval samples), or a store run id, run:N (a plain N when --db is given or no "
            "file of that name exists).  Runs of two different protocols are refused unless "
            "--any-protocol."),
    )
    p.add_argument("a", metavar="A", help="the first run (the baseline)")
    p.add_argument("b", metavar="B", help="the second run (differences are B - A)")
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")
    p.add_argument("--seed", type=int, default=0, help="resampling seed (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="paired bootstrap resamples (default 1000; 0 disables)")
    p.add_argument("--permutations", type=int, default=1000, metavar="N",
                   help="shuffles of the permutation test (default 1000; 0 disables)")
    p.add_argument("--any-protocol", action="store_true",
                   help="compare even when the two runs' provenance names different protocols")
    add_data_dir(p, fetch=None)  # which released file a folder's gold responses are from
    add_db_args(p)
    p.set_defaults(func=run)


@dataclass
class Side:
    spec: str
    labels: dict  # set -> doc id -> (gold label, label read)
    provenance: dict  # its protocol: recorded, or what `score` would record


def store_run_id(spec: str, db_given: bool) -> int | None:
    """The store run id `spec` names (run:N; a plain N when --db is given or no such path
    exists), else None: a path."""
    match = _RUN_ID.fullmatch(spec.strip())
    if match is None:
        return None
    if spec.strip().startswith("run:") or db_given or not Path(spec).expanduser().exists():
        return int(match.group(1))
    return None


def _store_side(spec: str, run_id: int, engine) -> Side:
    from imhi_bench.store.labels import run_labels, run_provenance

    prov = run_provenance(engine, run_id)
    if prov is None:
        raise ImhiError(f"{spec}: there is no run {run_id} in the results store: see "
                        "`imhi-bench leaderboard` (column run_id) or pass --db")
    labels = {name: rows.as_dict()
              for name, rows in run_labels(engine, [run_id]).get(run_id, {}).items()}
    if not labels:
        raise ImhiError(f"{spec}: run {run_id} has no stored samples (a reported row, or "
                        "recorded without them): compare runs with per-sample results")
    return Side(spec, labels, prov)


def load_sides(args: argparse.Namespace) -> tuple[Side, Side]:
    """Both runs' provenance and labels; the protocol check comes before any scoring."""
    from imhi_bench.runs.rescore import read_run_labels
    from imhi_bench.scoring.compare import protocol_text, protocols_differ

    ids = [store_run_id(s, args.db is not None) for s in (args.a, args.b)]
    engine = None
    if any(i is not None for i in ids):
        from imhi_bench.store.engine import open_store, store_engine

        engine = store_engine(open_store(args.db))
    sides = []
    for spec, run_id in zip((args.a, args.b), ids, strict=True):
        if run_id is None:
            labels, prov = read_run_labels(spec, args.data_dir)
            sides.append(Side(spec, labels, prov))
        else:
            sides.append(_store_side(spec, run_id, engine))
    a, b = sides
    if protocols_differ(a.provenance, b.provenance) and not args.any_protocol:
        raise ImhiError(f"A and B were run under different protocols (A: "
                        f"{protocol_text(a.provenance)}, B: {protocol_text(b.provenance)}): "
                        "compare runs of one protocol, or pass --any-protocol")
    return a, b


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.cli.score import check_writable_file, write_json
    from imhi_bench.runs.evaluate import check_counts
    from imhi_bench.scoring.compare import (
        compare_runs,
        protocol_note,
        protocol_of,
        protocol_text,
    )
    from imhi_bench.scoring.report import comparison_table

    check_counts(None, None, args.bootstrap)
    if args.permutations < 0:
        raise ImhiError(f"--permutations {args.permutations}: give 0 (no permutation test) "
                        "or more shuffles")
    json_path = check_writable_file(args.json, "--json") if args.json else None
    a, b = load_sides(args)
    result = compare_runs(a.labels, b.labels, seed=args.seed, n_boot=args.bootstrap,
                          n_perm=args.permutations)
    result = {
        "a": {"run": a.spec, "protocol": protocol_of(a.provenance).get("id")},
        "b": {"run": b.spec, "protocol": protocol_of(b.provenance).get("id")},
        "protocol": protocol_note(a.provenance, b.provenance),
        **result,
        "notice": NON_CLINICAL_NOTICE,
    }
    if json_path is not None:
        write_json(json_path, result)
        print(f"wrote {args.json}")
    print(f"A: {a.spec} ({protocol_text(a.provenance)})\n"
          f"B: {b.spec} ({protocol_text(b.provenance)})")
    print(result["protocol"] + "\n")
    # the table ends with the non-clinical notice: it stays the report's last line
    print(comparison_table(result))
    return 0
