"""The queue worker (`imhi-bench worker`): claim a submission, evaluate it with
`runner.run_eval`, record its run, repeat.

One job: claim (imhi_bench.queue.jobs) -> heartbeat thread on -> re-check a local folder's
content hash (a folder changed after submitting is not scored) -> `run_eval` into
`<submissions dir>/runs/<id>`, with the generation cache in `<submissions dir>/cache` ->
the contamination check (`imhi_bench.queue.contamination`) -> record the run and mark
the job FINISHED in one transaction, or FAILED with the one-line error.  Both paths are
fixed per submission, so a job requeued after its worker died resumes from the generations
that worker had cached (the cache is keyed by model identity and prompt; workers sharing
the submissions dir share it).

Modes: `--once` runs at most one job; `--drain` runs jobs until none it may run is PENDING
(stale RUNNING jobs are requeued first, so they count; RUNNING jobs with a live heartbeat
are left to their workers) and exits; with neither, the worker polls forever.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.models.options import check_batch_size
from imhi_bench.queue.checkpoint import content_hash
from imhi_bench.queue.jobs import (
    DEFAULT_HEARTBEAT_TIMEOUT,
    FAILED,
    FINISHED,
    Claim,
    Heartbeat,
    LostClaim,
    claim,
    fail,
    finish,
    new_worker_id,
    release,
    requeue_stale,
    waiting_for_remote_code,
)
from imhi_bench.queue.submission import PRECISIONS, SUBMIT_BACKENDS, submissions_dir

MODES = ("once", "drain", "forever")
DEBUG_ENV = "IMHI_DEBUG"  # as the command line's --debug
LOST = "LOST"


@dataclass
class WorkerOptions:
    db: str | None = None
    submissions_dir: str | None = None
    mode: str = "forever"  # MODES
    tasks: str | None = None  # None: the backend's full default (imhi / imhi_completion)
    limit: int | None = None
    max_new_tokens: int | None = None
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    trust_remote_code: bool = False
    batch_size: str = "auto"
    device: str | None = None
    data_dir: str | None = None
    bootstrap: int = 1000
    poll: float = 30.0
    worker_id: str | None = None
    debug: bool = False  # a crashing job's traceback on stderr (also $IMHI_DEBUG=1)


def heartbeat_interval(timeout: float) -> float:
    """Four beats per timeout: one slow write does not get a live job requeued."""
    return max(0.2, min(60.0, timeout / 4))


def check_options(opts: WorkerOptions) -> None:
    """Every option, before anything is claimed: a bad option would otherwise fail each job
    it touched (with --drain, the whole queue) while the worker exits 0."""
    from imhi_bench.runs.evaluate import check_counts

    if opts.mode not in MODES:
        raise ImhiError(f"unknown worker mode {opts.mode!r}: use one of {', '.join(MODES)}")
    if opts.heartbeat_timeout <= 0:
        raise ImhiError("--heartbeat-timeout must be a positive number of seconds")
    if opts.poll <= 0:
        raise ImhiError("--poll must be a positive number of seconds")
    check_counts(opts.limit, opts.max_new_tokens, opts.bootstrap)
    check_batch_size(opts.batch_size)
    check_tasks(opts.tasks, opts.data_dir)
    check_submissions_dir(opts.submissions_dir)


def check_tasks(tasks: str | None, data_dir: str | None) -> None:
    """--tasks names tasks that exist, with their data under --data-dir, for every backend a
    submission may use: a set name means another task per format (imhi_dr for hf,
    imhi_completion_dr for hf-seq2seq), and the default is the backend's full group."""
    from imhi_bench.models import registry
    from imhi_bench.runs.selection import select_tasks

    formats: dict[str, str] = {}
    for name in SUBMIT_BACKENDS:
        formats.setdefault(registry.backend(name).default_format, name)
    for backend in formats.values():
        select_tasks(tasks, backend, data_dir)


def check_submissions_dir(path: str | None) -> None:
    """The submissions dir (run folders and the cache go there) can be a folder."""
    directory = submissions_dir(path)
    folder = directory
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ImhiError(f"--submissions-dir {directory}: {folder} is a file, not a folder: "
                        "pass a folder (or set $IMHI_SUBMISSIONS_DIR)")


def work(opts: WorkerOptions, log=print) -> dict[str, int]:
    """Run jobs as `opts.mode` says; returns how many ended FINISHED, FAILED and LOST."""
    from imhi_bench.store.engine import open_store

    check_options(opts)
    factory = open_store(opts.db)
    worker = opts.worker_id or new_worker_id()
    directory = submissions_dir(opts.submissions_dir)
    counts = {FINISHED: 0, FAILED: 0, LOST: 0}
    log(f"worker {worker}: store ready, mode {opts.mode}")
    while True:
        for sub_id in requeue_stale(factory, opts.heartbeat_timeout):
            log(f"requeued {sub_id}: no heartbeat for {opts.heartbeat_timeout:g} s")
        job = claim(factory, worker, trust_remote_code=opts.trust_remote_code)
        if job is None:
            if opts.mode != "forever":
                held = 0 if opts.trust_remote_code else waiting_for_remote_code(factory)
                log("nothing pending" + (f" ({held} submission(s) need remote code: a worker "
                                         "started with --trust-remote-code runs them)"
                                         if held else ""))
                return counts
            time.sleep(opts.poll)
            continue
        counts[run_job(factory, job, opts, directory, log)] += 1
        if opts.mode == "once":
            return counts


def run_job(factory, job: Claim, opts: WorkerOptions, directory: Path, log=print) -> str:
    """Evaluate one claimed submission; returns FINISHED, FAILED or LOST."""
    from imhi_bench.queue.contamination import screen
    from imhi_bench.runs.evaluate import run_eval
    from imhi_bench.scoring.report import score_table

    sub = job.row
    log(f"claimed {sub['id']} ({sub['name']}, attempt {job.attempt})")
    try:
        with Heartbeat(factory, job, heartbeat_interval(opts.heartbeat_timeout), log) as hb:
            verify_pins(sub)
            run = run_eval(eval_options(sub, opts, directory), log=log)
            # before the run is recorded: a flagged run never ranks, not even for a moment
            check = screen(sub, opts, sets=list(run.samples), log=log)
        if hb.lost.is_set():
            raise LostClaim(f"submission {sub['id']} was requeued while this worker ran it: "
                            "its result was discarded")
        run_id = finish(factory, job, lambda session: record(session, job, run, check))
    except LostClaim as e:
        log(str(e))
        return LOST
    except ImhiError as e:
        return _failed(factory, job, str(e), log)
    except (KeyboardInterrupt, SystemExit):
        if release(factory, job, "requeued: its worker was stopped"):
            log(f"released {sub['id']}: back to PENDING")
        else:
            log(f"{sub['id']} had been requeued meanwhile: left to its new worker")
        raise
    except Exception as e:  # noqa: BLE001 - a model may break in any way; the worker goes on
        # The one line goes to the job (and the log); the traceback only when debugging, or
        # every broken submission would fill the worker's stderr.
        if _debug(opts):
            traceback.print_exc(file=sys.stderr)
        detail = f": {first_line(e)}" if str(e).strip() else ""
        return _failed(factory, job, f"evaluation crashed: {type(e).__name__}{detail}", log)
    finally:
        _free_memory()
    log(f"FINISHED {sub['id']}: run {run_id}")
    # The job's scores, as `imhi-bench eval` shows them (the table ends with the notice).
    log(score_table(run.report))
    return FINISHED


def _debug(opts: WorkerOptions) -> bool:
    return opts.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _failed(factory, job: Claim, error: str, log) -> str:
    if fail(factory, job, error):
        log(f"FAILED {job.id}: {error}")
        return FAILED
    log(f"{job.id} failed ({error}), but it had been requeued meanwhile: left to its new worker")
    return LOST


def _free_memory() -> None:
    # The next job loads another model: drop this one's weights now.
    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def verify_pins(sub: dict) -> None:
    """A local folder (or adapter) must still hash to what was submitted."""
    for path, pinned, what in ((sub["model"], sub["revision"], "model"),
                               (sub["adapter"], sub["adapter_revision"], "adapter")):
        if not path or not pinned.startswith("sha256:"):
            continue
        if not os.path.isdir(path):
            raise ImhiError(f"the {what} folder {path} is gone: it must stay in place until the "
                            "submission is evaluated; restore it, or submit again")
        now = content_hash(path)
        if now != pinned:
            raise ImhiError(f"the {what} folder {path} changed after it was submitted (content "
                            f"hash {now[:19]}, submitted {pinned[:19]}): submit it again under "
                            "a new name")


def eval_options(sub: dict, opts: WorkerOptions, directory: Path):
    from imhi_bench.models.options import ModelOptions
    from imhi_bench.runs.evaluate import EvalOptions

    local = sub["revision"].startswith("sha256:")
    model = ModelOptions(
        model=sub["model"], backend=sub["backend"], adapter=sub["adapter"] or None,
        revision=None if local else sub["revision"], dtype=PRECISIONS[sub["precision"]],
        batch_size=str(opts.batch_size), device=opts.device,
        trust_remote_code=bool(opts.trust_remote_code and sub["needs_remote_code"]),
        # queued without --allow-pickle: a pickle file is never loaded, whatever the folder
        # (or hub commit) holds
        safetensors_only=not sub["allow_pickle"],
    )
    return EvalOptions(
        model=model, tasks=opts.tasks, limit=opts.limit, max_new_tokens=opts.max_new_tokens,
        output=str(directory / "runs" / sub["id"]), name=sub["id"], data_dir=opts.data_dir,
        cache_dir=str(directory / "cache"), use_cache=True, bootstrap=opts.bootstrap,
    )


def record(session, job: Claim, run, contamination: dict | None = None) -> int:
    """Write the evaluated run into the store (inside `queue.finish`'s transaction), with
    its contamination check in the provenance."""
    from imhi_bench.core.clock import utcnow
    from imhi_bench.store.record import record_scored

    sub = job.row
    report = run.report
    provenance = {**report["provenance"], "submission": {
        "id": sub["id"], "attempt": job.attempt, "worker": job.worker,
        "submitter": sub["submitter"], "revision": sub["revision"],
        "adapter_revision": sub["adapter_revision"] or None,
    }}
    if contamination is not None:
        provenance["contamination"] = contamination
    adapter = bool(sub["adapter"])
    return record_scored(
        session,
        {**report, "provenance": provenance},
        run.samples,
        model={
            # An adapter is ranked as itself, on top of its base.
            "name": sub["name"],
            "path": sub["adapter"] if adapter else sub["model"],
            "revision": sub["adapter_revision"] if adapter else sub["revision"],
            "type": sub["type"], "params": sub["params"], "precision": sub["precision"],
            "base_model": sub["base_model"], "license": sub["license"],
            "training_data": sub["training_data"],
        },
        run={"started_at": job.claimed_at, "finished_at": utcnow()},
    )
