"""`imhi-bench score`: re-score generations that already exist, with no model."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir, add_db_args, add_quality_args
from imhi_bench.core.fileio import atomic_write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score existing generations (MentaLLaMA IMHI.py output folder)",
        description=(
            "Read a folder of generations in MentaLLaMA IMHI.py output format (one <SET>.csv "
            "per set, columns goldens and generated_text), read the label stated in each "
            "generation, and report weighted F1 (the paper's headline), accuracy, macro F1, "
            "unparseable count and a bootstrap 95%% CI per set and on average."
        ),
    )
    p.add_argument("--predictions", required=True, metavar="PATH",
                   help="folder of <SET>.csv files (or one such file), or an imhi-bench "
                   "eval run folder / lm-eval samples_<task>.jsonl files")
    add_data_dir(p)
    p.add_argument("--json", metavar="OUT", help="also write the results JSON here")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the CI (default 1000; 0 disables)")
    p.add_argument("--name", metavar="NAME",
                   help="record the results in the store under this model name "
                   "(shown on the leaderboard as reproduced)")
    add_db_args(p, no_db=True)
    add_quality_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from imhi_bench.cli.options import quality_from_args
    from imhi_bench.runs.rescore import score_predictions
    from imhi_bench.scoring.report import score_table

    quality = quality_from_args(args)  # validates options before any work
    scored = score_predictions(args.predictions, data_dir=args.data_dir, seed=args.seed,
                               bootstrap=args.bootstrap, quality=quality)
    report = scored.report
    run_id = None
    if args.name and not args.no_db:
        # Recorded before the JSON is written: a store error leaves no result file behind.
        run_id = record(args.db, args.name, scored)
    if args.json:
        atomic_write_json(args.json, report)
    if args.json:
        print(f"wrote {args.json}")
    if run_id is not None:
        print(f"recorded as run {run_id} of {args.name!r} in the results store")
    # the table ends with the non-clinical notice: it stays the report's last line
    print(score_table(report))
    return 0


def record(db: str | None, name: str, scored) -> int:
    """Write a scored run into the results store (one transaction)."""
    from imhi_bench.store.record import record_scored

    return record_scored(db, scored.report, scored.samples, model={"name": name})
