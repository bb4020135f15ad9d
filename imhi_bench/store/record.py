"""Writing a reproduced run: `record_run` validates everything first
(`imhi_bench.store.validate`), then writes the model, the run, its per-set results, the
prompts and the samples in one transaction, so a crash or a kill leaves no half run.

Anything `record_run` writes is "reproduced"; the paper's numbers go in only through
`imhi_bench.store.reported.load_reported`, as "reported" runs: the two are never mixed.

Each run is recorded with its coverage (`scoring.coverage.run_coverage`): complete when it
scored every sample of every set it claims, partial (`--limit`, a set cut short or not
scored) or unknown.  The leaderboard ranks complete runs only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from imhi_bench.scoring.coverage import run_coverage
from imhi_bench.store.engine import StoreTarget, write_session
from imhi_bench.store.tables import Model, Prompt, Run, Sample, SetResult
from imhi_bench.store.validate import model_row, run_row, sample_rows, set_result_rows


def get_or_create_model(session: Session, fields: dict) -> Model:
    """The model with these name, revision and path (`model_row` fields), created if new."""
    found = session.scalars(
        select(Model).where(Model.name == fields["name"], Model.revision == fields["revision"],
                            Model.path == fields["path"])
    ).one_or_none()
    if found is None:
        found = Model(**fields)
        session.add(found)
    else:
        # Later records may know more (a license, a size): fill in, never blank out.
        for key, value in fields.items():
            if value is not None:
                setattr(found, key, value)
    session.flush()
    return found


def distinct_name(session: Session, fields: dict) -> str:
    """A default model name (folder name or hub id) that no other model in the store has:
    the name itself, unless a model of that name has another path or revision, then the name
    plus a short sha256 of the resolved path ("llama-1a2b3c4d"), or, for the same path at
    another revision, plus "@" and the revision.  The same weights get the same name each
    time, so their runs stay one model."""
    name, path, revision = fields["name"], fields["path"], fields["revision"]
    others = session.execute(
        select(Model.path, Model.revision).where(Model.name == name)).all()
    if not others or (path, revision) in {(p, r) for p, r in others}:
        return name
    if all(p == path for p, _ in others):
        return f"{name}@{revision[:12] or 'unpinned'}"
    return f"{name}-{hashlib.sha256(path.encode('utf-8')).hexdigest()[:8]}"




def _insert_prompts(session: Session, prompts: dict[str, str]) -> None:
    if not prompts:
        return
    dialect = session.get_bind().dialect.name
    rows = [{"hash": h, "text": t} for h, t in prompts.items()]
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        for i in range(0, len(rows), 500):
            session.execute(dialect_insert(Prompt).on_conflict_do_nothing(), rows[i:i + 500])
        return
    hashes = list(prompts)
    have: set[str] = set()
    for i in range(0, len(hashes), 500):
        have.update(session.scalars(select(Prompt.hash).where(Prompt.hash.in_(hashes[i:i + 500]))))
    missing = [r for r in rows if r["hash"] not in have]
    if missing:
        session.execute(insert(Prompt), missing)


def _insert_samples(session: Session, run_id: int, rows: list[dict]) -> None:
    for row in rows:
        row["run_id"] = run_id
    for i in range(0, len(rows), 1000):
        session.execute(insert(Sample), rows[i:i + 1000])


def record_run(
    session_or_url: StoreTarget,
    *,
    model: dict,
    run: dict,
    results: dict,
    samples: list[dict] | None = None,
    unique_name: bool = False,
) -> int:
    """Record one reproduced run and return its id.

    `model`: MODEL_FIELDS (name required; a model is found or created by name + revision +
    path, and fields given here fill in its others).  `run`: RUN_FIELDS, all optional
    (format and provenance default to the score JSON's provenance, tasks to its sets,
    finished_at to now).  `results`: the score JSON.  `samples`: per-sample dicts as
    `scoring.Sample.to_json` writes them.  Everything is validated before the first write,
    then written in one transaction.  `session_or_url`: see `write_session`.
    `unique_name`: the name is a default one (a folder name or hub id), made distinct from
    other models' in the same transaction (`distinct_name`).  The run's coverage is
    recorded with it (`run_coverage`)."""
    set_rows = set_result_rows(results)
    set_names = [r["set_name"] for r in set_rows]
    model_fields = model_row(model)
    run_fields = run_row(run, results, set_names)
    new_samples, prompts = sample_rows(samples or [], set(set_names))
    complete, coverage = run_coverage(
        source=run_fields["source"], tasks=run_fields["tasks"], fmt=run_fields["format"],
        provenance=run_fields["provenance"], counts={r["set_name"]: r["n"] for r in set_rows})

    with write_session(session_or_url) as session:
        if unique_name:
            model_fields = {**model_fields, "name": distinct_name(session, model_fields)}
        model_obj = get_or_create_model(session, model_fields)
        run_obj = Run(model_id=model_obj.id, complete=complete, coverage=coverage,
                      **run_fields)
        session.add(run_obj)
        session.flush()
        session.execute(insert(SetResult), [{**r, "run_id": run_obj.id} for r in set_rows])
        _insert_prompts(session, prompts)
        _insert_samples(session, run_obj.id, new_samples)
        _mark_run_folder(run_fields["provenance"], run_obj.id)
        return run_obj.id


def _mark_run_folder(provenance, run_id: int) -> None:
    """Inside the run's transaction: the run folder it points to is marked as recorded
    (`runs.folder.mark_recorded`), so that no later run replaces it; a mark that cannot be
    written rolls the run back."""
    from pathlib import Path

    from imhi_bench.core.errors import ImhiError, first_line
    from imhi_bench.runs.folder import mark_recorded

    run_dir = provenance.get("run_dir") if isinstance(provenance, Mapping) else None
    if not isinstance(run_dir, str) or not run_dir:
        return
    try:
        mark_recorded(Path(run_dir), run_id)
    except OSError as e:
        raise ImhiError(f"cannot mark the run folder {run_dir} as recorded "
                        f"({e.strerror or first_line(e)}); nothing was recorded: check that "
                        "the folder can be written") from None


def record_scored(
    session_or_url: StoreTarget,
    report: dict,
    samples: Mapping[str, list],
    *,
    model: dict,
    run: dict | None = None,
    unique_name: bool = False,
) -> int:
    """Record a run scored by `imhi_bench.scoring.pipeline.score_run` (`eval`, `score` and
    the worker all record through here): its format, backend and generation config come from
    the report, its samples are the scored samples; `model` is MODEL_FIELDS, `run` adds or
    overrides RUN_FIELDS (e.g. started_at); `unique_name` as in `record_run`.  One transaction,
    as `record_run`."""
    from imhi_bench.scoring.pipeline import report_format

    prov = report.get("provenance") or {}
    training = (prov.get("training") or {}).get("training_data")
    if training and not model.get("training_data"):  # from the checkpoint's training card
        model = {**model, "training_data": training}
    fields = {
        # `score` has no backend: its runs are recorded as made by "score"
        "backend": prov.get("backend") or prov.get("source"),
        "format": report_format(report),
        "generation_config": prov.get("generation"),
        **(run or {}),
    }
    return record_run(
        session_or_url, model=model, run=fields, results=report,
        samples=[s.to_json() for rows in samples.values() for s in rows],
        unique_name=unique_name,
    )
