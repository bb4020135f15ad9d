"""`imhi-bench score`: re-score generations that already exist, with no model."""

from __future__ import annotations

import argparse
from pathlib import Path

from imhi_bench.cli.options import add_data_dir, add_db_args, add_quality_args
from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.fileio import atomic_write_json, check_creatable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score existing generations (MentaLLaMA IMHI.py output folder)",
        description=(
            "Read a folder of generations in MentaLLaMA IMHI.py output format (one <SET>.csv "
            "per set, columns goldens and generated_text), read the label stated in each "
            "generation, and report weighted F1 (the paper's headline), accuracy, macro F1, "
            "unparseable count and a bootstrap 95% CI per set and on average."
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


NAME_MAX = 200  # the store's model name column


def check_name(name: str) -> str:
    """--name: the model name the run is recorded under, as the store takes it."""
    name = name.strip()
    if not name:
        raise ImhiError("--name is empty: give the model name to record the run under "
                        "(or drop --name, or pass --no-db)")
    if len(name) > NAME_MAX:
        raise ImhiError(f"--name is longer than {NAME_MAX} characters: shorten it")
    if any(not c.isprintable() for c in name):
        raise ImhiError(f"--name {name!r} holds control characters: use plain text")
    return name


def check_writable_file(path: str, option: str) -> Path:
    """Fail now, before minutes of work, when a result file could not be written at `path`:
    a folder, something not a regular file (a device, /proc), a path under a plain file, or a
    folder this process cannot create files in.  Leaves nothing behind."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ImhiError(f"{option} {path} is a folder: pass a file path, e.g. "
                        f"{target / 'results.json'}")
    if target.exists() and not target.is_file():
        raise ImhiError(f"{option} {path} is not a regular file: pass a path to a .json file")
    check_creatable(target, option)  # missing folders are made when it is written
    return target


def run(args: argparse.Namespace) -> int:
    from imhi_bench.cli.options import quality_from_args
    from imhi_bench.runs.evaluate import check_counts
    from imhi_bench.runs.rescore import read_predictions, score_predictions
    from imhi_bench.scoring.report import score_table

    # Options first, then the prediction files, then the store (created or upgraded if need
    # be), all before scoring, which may run quality models for minutes.
    check_counts(None, None, args.bootstrap)
    name = check_name(args.name) if args.name is not None else None
    json_path = check_writable_file(args.json, "--json") if args.json else None
    quality = quality_from_args(args)
    predictions = read_predictions(args.predictions, args.data_dir)
    factory = None
    if name is not None and not args.no_db:
        from imhi_bench.store.engine import open_store

        factory = open_store(args.db)
    scored = score_predictions(args.predictions, seed=args.seed, bootstrap=args.bootstrap,
                               quality=quality, predictions=predictions)
    report = scored.report
    run_id = None
    if factory is not None:
        run_id = record_with_json(factory, name, scored, json_path)
    elif json_path is not None:
        write_json(json_path, report)
    if json_path is not None:
        print(f"wrote {args.json}")
    if run_id is not None:
        print(f"recorded as run {run_id} of {name!r} in the results store")
    # the table ends with the non-clinical notice: it stays the report's last line
    print(score_table(report))
    return 0


def write_json(path: Path, report: dict, note: str = "") -> None:
    """The score JSON at `path` (atomically); a failure that the pre-check could not foresee
    (the folder went away, the disk filled) is one line."""
    try:
        atomic_write_json(path, report)
    except OSError as e:
        raise ImhiError(f"cannot write --json {path} ({e.strerror or first_line(e)}){note}: "
                        "pass a path in a writable folder") from None


def record_with_json(factory, name: str, scored, json_path: Path | None) -> int:
    """Record the run and write the JSON as one outcome: the JSON is written inside the
    store transaction, so a JSON that cannot be written rolls the run back, and a commit
    that fails takes the new JSON away again."""
    from imhi_bench.store.engine import write_session
    from imhi_bench.store.record import record_scored

    written = False
    try:
        with write_session(factory) as session:
            run_id = record_scored(session, scored.report, scored.samples,
                                   model={"name": name})
            if json_path is not None:
                write_json(json_path, scored.report, "; nothing was recorded")
                written = True
    except BaseException:
        if written:
            json_path.unlink(missing_ok=True)
        raise
    return run_id
