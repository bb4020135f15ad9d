"""The contamination check of a submission (`imhi_bench.train.contamination`), run by the
worker before the evaluation is recorded, and an operator's clearing of a flagged run.

The check's report goes into the run's provenance under "contamination" (no store change):
the leaderboard reads it there (`scoring.contamination.flagged`), and a flagged run stays
out of the default ranking until `imhi-bench contamination clear RUN_ID` marks it cleared.
"""

from __future__ import annotations

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.scoring.contamination import FLAGGED

KEY = "contamination"


def screen(sub: dict, opts, *, sets: list[str] | None = None, log=print) -> dict:
    """The check of a claimed submission (its model, adapter and precision as the worker
    evaluates them; against its base model when one was recorded and can be loaded), or
    {"verdict": None, "error": why} when it cannot run (no held-out data, or it broke): a
    submission is never failed by its check."""
    from imhi_bench.models.registry import backend
    from imhi_bench.queue.submission import PRECISIONS
    from imhi_bench.train.contamination import CheckOptions, format_report, run_check

    local = sub["revision"].startswith("sha256:")
    base = sub.get("base_model") or None
    if base == sub["model"] and not sub["adapter"]:
        base = None  # the model is its own base: nothing to take out
    if base and not _loadable(base):
        log(f"contamination check: base model {base} is not at hand; checked without it")
        base = None
    check = CheckOptions(
        model=sub["model"], adapter=sub["adapter"] or None, base=base,
        seq2seq=backend(sub["backend"]).default_format == "completion", sets=sets,
        limit=opts.limit, data_dir=opts.data_dir, device=opts.device,
        dtype=PRECISIONS[sub["precision"]], safetensors_only=not sub["allow_pickle"],
        trust_remote_code=bool(opts.trust_remote_code and sub["needs_remote_code"]),
        progress=False)
    if not local and sub["revision"]:
        log("contamination check: hub models are checked at their current revision")
    try:
        report = run_check(check, log=log)
    except ImhiError as e:
        log(f"contamination check not run: {e}")
        return {"verdict": None, "error": first_line(e)}
    except Exception as e:  # noqa: BLE001 - the evaluation stands; the check says it failed
        log(f"contamination check crashed: {type(e).__name__}: {first_line(e)}")
        return {"verdict": None, "error": f"crashed: {type(e).__name__}: {first_line(e)}"}
    log(format_report(report))
    return report


def _loadable(name: str) -> bool:
    """A local folder, or a hub id the hub (or the offline cache) serves."""
    from pathlib import Path

    from imhi_bench.models.loading import check_hub_model, is_hub_id

    if Path(name).expanduser().is_dir():
        return True
    if not is_hub_id(name):
        return False
    try:
        check_hub_model(name, "--base")
    except ImhiError:
        return False
    return True


def clear(factory, run_id: int, note: str = "") -> dict:
    """Mark a flagged run's check cleared (an operator looked: it ranks again); returns
    the updated check."""
    from imhi_bench.core.clock import utcnow
    from imhi_bench.store.engine import write_session
    from imhi_bench.store.tables import Run

    with write_session(factory) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise ImhiError(f"no run {run_id} in the store: see the leaderboard's run_id "
                            "column")
        prov = dict(run.provenance or {})
        check = prov.get(KEY)
        if not isinstance(check, dict) or check.get("verdict") not in FLAGGED:
            raise ImhiError(f"run {run_id} is not flagged by the contamination check (its "
                            f"verdict: {(check or {}).get('verdict')}): nothing to clear")
        check = {**check, "cleared": {"at": utcnow().isoformat(timespec="seconds") + "Z",
                                      "note": note}}
        prov[KEY] = check
        run.provenance = prov  # a new dict: the JSON column is written
    return check
