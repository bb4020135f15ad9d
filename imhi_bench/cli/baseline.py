"""`imhi-bench baseline run SPEC [key=value ...]` and `imhi-bench baseline list`."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir, add_db_args, check_store_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline", help="rerun the paper's baselines (MentalRoBERTa, ChatGPT, LLaMA2)",
        description="Run a baseline of the paper's Tables 2 and 3 from its spec (shipped with "
        "the package: `imhi-bench baseline list`), "
        "score it with the pipeline of `imhi-bench eval`, write the same run folder, and "
        "record it (with its type, setting and spec) under the paper's row name, so the "
        "leaderboard shows it beside that row once `imhi-bench db init` has loaded them.")
    actions = p.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="run one baseline spec",
        description="Run the spec (a shipped spec's name, see `baseline list`, or a YAML "
        "file) with key=value overrides; every "
        "choice the paper does not state is a spec key, recorded in the run's provenance.")
    run.add_argument("spec", metavar="SPEC",
                     help="a shipped spec's name (e.g. mentalroberta) or a spec YAML file")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="spec keys to override")
    run.add_argument("--output", metavar="DIR",
                     help="run folder (default runs/baseline-<spec name>-<UTC time>, a new "
                     "one per run; a recorded run's folder is never replaced)")
    run.add_argument("--yes", action="store_true",
                     help="send an API run estimated above the spec's confirm_tokens")
    run.add_argument("--cache-dir", metavar="DIR",
                     help="generation cache to resume from (default: $IMHI_CACHE_DIR, else a "
                     "per-user cache dir)")
    add_data_dir(run, fetch="train")  # MentalRoBERTa trains, few-shot draws from train
    add_db_args(run, no_db=True)
    run.set_defaults(func=run_baseline, precheck=check_store_url)
    ls = actions.add_parser("list", help="the shipped baseline specs",
                            description="List the baseline specs (by the name `baseline run` "
                            "takes) with their runner, type, setting and model.")
    ls.add_argument("--dir", metavar="DIR",
                    help="a folder of spec YAML files (default: the specs shipped with the "
                    "package)")
    ls.add_argument("--keys", action="store_true", help="list every spec key with its meaning")
    ls.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from imhi_bench.baselines.spec import SPEC_DIR, BaselineSpec, field_docs, list_specs
    from imhi_bench.scoring.report import table

    if args.keys:
        defaults = BaselineSpec()
        for name, doc in field_docs().items():
            value = getattr(defaults, name)
            shown = ",".join(value) if isinstance(value, tuple) else value
            print(f"{name} (default {shown!r}):\n    {doc}")
        return 0
    rows = []
    for path, spec in list_specs(args.dir or SPEC_DIR):
        rows.append([path.stem, spec.name, spec.runner, spec.type, spec.setting,
                     spec.encoder if spec.runner == "discriminative" else spec.model,
                     spec.description])
    print(table(["spec", "name", "runner", "type", "setting", "model", "what"], rows))
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from imhi_bench.baselines.runner import run_spec
    from imhi_bench.baselines.spec import load_spec
    from imhi_bench.runs.folder import default_run_dir, stamped
    from imhi_bench.scoring.report import score_table

    spec = load_spec(args.spec, args.overrides)
    # every run a folder of its own: a second run of a spec never lands on the first's
    output = Path(args.output or default_run_dir(stamped(f"baseline-{Path(args.spec).stem}")))
    if not args.no_db:  # a bad, damaged or read-only store fails now, not after the run
        from imhi_bench.cli.eval import check_store

        check_store(args)
    result = run_spec(spec, output=output, data_dir=args.data_dir, cache_dir=args.cache_dir,
                      yes=args.yes)
    run_id = None
    if not args.no_db:
        from imhi_bench.store.record import record_scored

        run_id = record_scored(
            args.db, result.report, result.samples,
            model=spec.model_fields(), run={"setting": spec.setting})
    print(f"Run folder: {result.run_dir}")
    if run_id is not None:
        from imhi_bench.store.engine import open_store
        from imhi_bench.store.reported import NOT_LOADED, reported_run_count

        factory = open_store(args.db)
        beside = ", beside the paper's row" if reported_run_count(factory, spec.name) else ""
        print(f"Recorded as run {run_id} ({spec.name}, {spec.type}, {spec.setting}) in the "
              f"results store{beside} (see `imhi-bench leaderboard`).")
        if not reported_run_count(factory):
            print(NOT_LOADED)
    print()
    # the table ends with the non-clinical notice: it stays the report's last line
    print(score_table(result.report))
    return 0
