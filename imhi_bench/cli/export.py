"""`imhi-bench export RUN --model-index`: a run's scores for a Hugging Face model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from imhi_bench.cli.options import add_db_args
from imhi_bench.core.errors import ImhiError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="print a run's scores as a model card's model-index block",
        description="Print the model-index block of a Hugging Face model card (YAML front "
        "matter, which the Hub shows as an evaluation table) for a run: per set and for the "
        "mean, weighted F1, accuracy and macro F1, with the protocol they were made under "
        "named in each result's source.  RUN: a run folder (or its imhi_results.json), or a "
        "store run id, run:N (a plain N when --db is given or no file of that name exists).  "
        "A partial run (--limit) is refused unless --partial, which says so in the source.")
    p.add_argument("run", metavar="RUN", help="a run folder or a store run id")
    p.add_argument("--model-index", action="store_true", required=True,
                   help="print the model-index block (the one export there is)")
    p.add_argument("--name", metavar="NAME",
                   help="the model's name in the block (default: the run's)")
    p.add_argument("--partial", action="store_true",
                   help="export a partial run, saying so in each result's source")
    add_db_args(p)
    p.set_defaults(func=run)


def _from_folder(path: Path) -> tuple[str, dict, dict | None, dict | None, str | None]:
    """(model name, sets, mean, protocol, why partial) of a run folder's score JSON."""
    import json

    from imhi_bench.runs.folder import RESULTS_FILE
    from imhi_bench.scoring.coverage import run_coverage

    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        report = json.loads(file.read_text("utf-8"))
        sets = report["sets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ImhiError(f"{file} is not an imhi-bench score JSON ({type(e).__name__}): pass a "
                        "run folder eval, score or baseline wrote") from None
    prov = report.get("provenance") or {}
    complete, why = run_coverage(source="reproduced", tasks=list(sets), fmt=None,
                                 provenance=prov,
                                 counts={n: m.get("n") for n, m in sets.items()})
    name = prov.get("name") or Path(str(prov.get("model") or path.name)).name
    return name, sets, report.get("mean"), prov.get("protocol"), \
        (why if complete is False else None)


def _from_store(db: str | None, run_id: int):
    """(model name, sets, mean, protocol, why partial, reference) of a store run."""
    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run, SetResult

    factory = open_store(db)
    with factory() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise ImhiError(f"no run {run_id} in the store: list them with imhi-bench "
                            "leaderboard --csv FILE, or pass a run folder")
        rows = session.query(SetResult).filter(SetResult.run_id == run_id).all()
        sets = {r.set_name: {"weighted_f1": r.weighted_f1, "accuracy": r.accuracy,
                             "macro_f1": r.macro_f1} for r in rows}
        why = (run.coverage or "partial") if run.complete is False else None
        reference = run.reference if run.source == "reported" else None
        return run.model.name, sets, run.mean, run.protocol, why, reference


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.cli.compare import store_run_id
    from imhi_bench.scoring.model_index import model_index, model_index_yaml, source

    run_id = store_run_id(args.run, args.db is not None)
    reference = None
    if run_id is None:
        path = Path(args.run).expanduser()
        if not path.exists():
            raise ImhiError(f"{args.run}: no such run folder or file: pass a run folder or a "
                            "store run id")
        name, sets, mean, protocol, why = _from_folder(path)
    else:
        name, sets, mean, protocol, why, reference = _from_store(args.db, run_id)
    if why and not args.partial:
        raise ImhiError(f"{args.run} is a partial run ({why}): its scores do not compare with "
                        "full test sets; export a complete run, or pass --partial to say so")
    if not sets:
        raise ImhiError(f"{args.run} has no scored set to export")
    index = model_index(args.name or name, sets, mean,
                        source(protocol, reference=reference, partial=why))
    print(model_index_yaml(index, comment=NON_CLINICAL_NOTICE), end="")
    return 0
