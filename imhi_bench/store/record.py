"""Writing a reproduced run: `record_run` validates everything first
(`imhi_bench.store.validate`), then writes the model, the run, its per-set results, the
prompts and the samples in one transaction, so a crash or a kill leaves no half run.

Anything `record_run` writes is "reproduced"; the paper's numbers go in only through
`imhi_bench.store.reported.load_reported`, as "reported" runs: the two are never mixed.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

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
) -> int:
    """Record one reproduced run and return its id.

    `model`: MODEL_FIELDS (name required; a model is found or created by name + revision +
    path, and fields given here fill in its others).  `run`: RUN_FIELDS, all optional
    (format and provenance default to the score JSON's provenance, tasks to its sets,
    finished_at to now).  `results`: the score JSON.  `samples`: per-sample dicts as
    `scoring.Sample.to_json` writes them.  Everything is validated before the first write,
    then written in one transaction.  `session_or_url`: see `write_session`."""
    set_rows = set_result_rows(results)
    set_names = [r["set_name"] for r in set_rows]
    model_fields = model_row(model)
    run_fields = run_row(run, results, set_names)
    new_samples, prompts = sample_rows(samples or [], set(set_names))

    with write_session(session_or_url) as session:
        model_obj = get_or_create_model(session, model_fields)
        run_obj = Run(model_id=model_obj.id, **run_fields)
        session.add(run_obj)
        session.flush()
        session.execute(insert(SetResult), [{**r, "run_id": run_obj.id} for r in set_rows])
        _insert_prompts(session, prompts)
        _insert_samples(session, run_obj.id, new_samples)
        return run_obj.id


def record_scored(
    session_or_url: StoreTarget,
    report: dict,
    samples: Mapping[str, list],
    *,
    model: dict,
    run: dict | None = None,
) -> int:
    """Record a run scored by `imhi_bench.scoring.pipeline.score_run` (`eval`, `score` and
    the worker all record through here): its format, backend and generation config come from
    the report, its samples are the scored samples; `model` is MODEL_FIELDS, `run` adds or
    overrides RUN_FIELDS (e.g. started_at).  One transaction, as `record_run`."""
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
    )
