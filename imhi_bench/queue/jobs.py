"""The submission queue in the results store: claim, heartbeat, requeue, finish, fail.

States: PENDING -> RUNNING -> FINISHED | FAILED; RUNNING -> PENDING when its worker stops
heartbeating for longer than the timeout (killed, machine lost), or releases it (Ctrl-C).

Exactly once, under any number of workers on SQLite or PostgreSQL:

* a claim is one conditional UPDATE of the oldest PENDING row (`claim`), so two workers
  never both get a job: on SQLite writers are serialised (BEGIN IMMEDIATE); on PostgreSQL
  the second UPDATE waits for the first's row lock, re-checks `status = 'PENDING'` on the
  committed row, matches nothing, and the worker tries the next row;
* a claim is identified by (worker id, claim time, attempt number), and every later write
  by the worker (heartbeat, finish, fail, release) is conditional on it.  A job requeued
  while its worker was merely slow is therefore never finished by that worker: `finish`
  records the run and marks the job FINISHED in one transaction, and rolls the run back
  when the claim is no longer its own.  So a submission ends with exactly one completed run.

`attempts` counts the claims that did not end in their worker's hands: a claim adds one, a
graceful stop (`release`: Ctrl-C, SIGTERM) takes it back, so what remains are the workers
that died or went silent holding the job (`requeue_stale`), plus the claim now running.  A
job fails after MAX_ATTEMPTS crashes, however often workers were stopped cleanly while
running it.  Fencing does not rely on `attempts` growing: a worker id is unique per process,
one process holds one claim at a time (its heartbeat thread is stopped before it finishes,
fails or releases a job), and the claim time tells apart two claims of the same job by the
same worker even when `attempts` came back to the same number in between.

Times are naive UTC from the workers' clocks: workers on several machines need synchronised
clocks (NTP), and a heartbeat timeout well above the skew.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from imhi_bench.core.clock import utcnow
from imhi_bench.core.errors import ImhiError
from imhi_bench.store.engine import write_session
from imhi_bench.store.readback import raw, read_json, read_time
from imhi_bench.store.tables import Run, Submission

PENDING, RUNNING, FINISHED, FAILED = "PENDING", "RUNNING", "FINISHED", "FAILED"
DEFAULT_HEARTBEAT_TIMEOUT = 600.0  # seconds without a heartbeat before a job is requeued
MAX_ATTEMPTS = 3  # a job whose worker died this many times is FAILED, not retried forever
ERROR_MAX = 1000
TIME_COLUMNS = ("submitted", "claimed_at", "heartbeat", "finished")  # Submission's dates


def new_worker_id() -> str:
    """host:pid:random: unique per worker process, readable in `status`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= ERROR_MAX else text[:ERROR_MAX - 3] + "..."


@dataclass(frozen=True)
class Claim:
    """A job this worker holds: the submission row as claimed, and the claim's identity."""

    id: str
    worker: str
    attempt: int
    claimed_at: _dt.datetime
    row: dict  # the submission's columns


def _row(sub: Submission) -> dict:
    return {c.key: getattr(sub, c.key) for c in Submission.__table__.columns}


def _mine(claim: Claim):
    return (Submission.id == claim.id, Submission.status == RUNNING,
            Submission.worker == claim.worker, Submission.claimed_at == claim.claimed_at,
            Submission.attempts == claim.attempt)


# --------------------------------------------------------------------------- workers


def requeue_stale(factory: sessionmaker, timeout: float, *, now: _dt.datetime | None = None,
                  max_attempts: int = MAX_ATTEMPTS) -> list[str]:
    """Return RUNNING jobs whose heartbeat is older than `timeout` seconds to PENDING (or
    FAILED when this is their `max_attempts`-th lost worker); the ids requeued."""
    now = now or utcnow()
    cutoff = now - _dt.timedelta(seconds=timeout)
    stale = (Submission.status == RUNNING, Submission.heartbeat < cutoff)
    with write_session(factory) as session:
        rows = session.execute(select(Submission.id, Submission.attempts).where(*stale)).all()
        if not rows:
            return []
        session.execute(
            update(Submission).where(*stale, Submission.attempts >= max_attempts).values(
                status=FAILED, finished=now, worker=None,
                error=f"its worker stopped responding {max_attempts} times (no heartbeat for "
                f"{timeout:g} s): the model may crash the worker (out of memory?)")
            .execution_options(synchronize_session=False))
        # Conditional on still being stale: a heartbeat that landed meanwhile keeps the job.
        session.execute(
            update(Submission).where(*stale, Submission.attempts < max_attempts)
            .values(status=PENDING, worker=None,
                    error=f"requeued: no heartbeat for {timeout:g} s (worker lost)")
            .execution_options(synchronize_session=False))
        return [sub_id for sub_id, attempts in rows if attempts < max_attempts]


def claim(factory: sessionmaker, worker: str, *, trust_remote_code: bool = False) \
        -> Claim | None:
    """Claim the oldest PENDING submission this worker may run, or None if there is none.

    One conditional UPDATE:
        UPDATE submissions SET status='RUNNING', worker=:w, ... attempts=attempts+1
        WHERE id = (SELECT id FROM submissions WHERE status='PENDING' [AND NOT
                    needs_remote_code] ORDER BY submitted, id LIMIT 1)
          AND status = 'PENDING'
    A rowcount of 0 means another worker took that row first (PostgreSQL): try again.  Each
    lost race is a job claimed by someone else, so the loop ends."""
    runnable = [Submission.status == PENDING]
    if not trust_remote_code:
        runnable.append(Submission.needs_remote_code.is_(False))
    while True:
        now = utcnow()
        oldest = (select(Submission.id).where(*runnable)
                  .order_by(Submission.submitted, Submission.id).limit(1).scalar_subquery())
        with write_session(factory) as session:
            taken = session.execute(
                update(Submission)
                .where(Submission.id == oldest, Submission.status == PENDING)
                .values(status=RUNNING, worker=worker, claimed_at=now, heartbeat=now,
                        attempts=Submission.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 1:
                sub = session.scalars(select(Submission).where(
                    Submission.worker == worker, Submission.status == RUNNING,
                    Submission.claimed_at == now)).one()
                return Claim(sub.id, worker, sub.attempts, now, _row(sub))
            left = session.scalar(select(func.count()).select_from(Submission)
                                  .where(*runnable))
        if not left:
            return None


def waiting_for_remote_code(factory: sessionmaker) -> int:
    """PENDING submissions only a --trust-remote-code worker claims."""
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Submission).where(
            Submission.status == PENDING, Submission.needs_remote_code.is_(True))) or 0


def beat(factory: sessionmaker, claim: Claim) -> bool:
    """Refresh the heartbeat; False when the claim was lost (requeued and re-claimed)."""
    with write_session(factory) as session:
        return session.execute(
            update(Submission).where(*_mine(claim)).values(heartbeat=utcnow())
            .execution_options(synchronize_session=False)).rowcount == 1


class Heartbeat:
    """A thread refreshing a claim's heartbeat every `interval` seconds while a job runs.
    `lost` is set when the claim is no longer this worker's."""

    def __init__(self, factory: sessionmaker, claim: Claim, interval: float, log=print):
        self.factory, self.claim, self.interval, self.log = factory, claim, interval, log
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imhi-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not beat(self.factory, self.claim):
                    self.lost.set()
                    self.log(f"lost the claim on {self.claim.id}: another worker requeued it")
                    return
            except Exception as e:  # noqa: BLE001 - a busy or unreachable store: beat again
                self.log(f"heartbeat for {self.claim.id} failed: {e}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class LostClaim(ImhiError):
    """The job was requeued (heartbeat timeout) and is no longer this worker's."""


def finish(factory: sessionmaker, claim: Claim, record) -> int:
    """Mark the job FINISHED and record its run in one transaction; `record(session)` writes
    the run and returns its id.  Raises LostClaim, recording nothing, if the claim is gone."""
    with write_session(factory) as session:
        done = session.execute(
            update(Submission).where(*_mine(claim))
            .values(status=FINISHED, finished=utcnow(), heartbeat=utcnow(), error=None)
            .execution_options(synchronize_session=False)).rowcount
        if done != 1:
            raise LostClaim(f"submission {claim.id} was requeued while this worker ran it "
                            "(heartbeat timeout): its result was discarded")
        run_id = record(session)
        session.execute(update(Run).where(Run.id == run_id).values(submission_id=claim.id)
                        .execution_options(synchronize_session=False))
        return run_id


def fail(factory: sessionmaker, claim: Claim, error: str) -> bool:
    with write_session(factory) as session:
        return session.execute(
            update(Submission).where(*_mine(claim))
            .values(status=FAILED, finished=utcnow(), error=one_line(error))
            .execution_options(synchronize_session=False)).rowcount == 1


def release(factory: sessionmaker, claim: Claim, reason: str) -> bool:
    """Give a job back (the worker is stopping): PENDING again at once, not after the
    timeout.  A clean stop is not the job's fault: its claim is taken back from `attempts`,
    which counts crashes only (see the module docstring)."""
    with write_session(factory) as session:
        return session.execute(
            update(Submission).where(*_mine(claim))
            .values(status=PENDING, worker=None, error=one_line(reason),
                    attempts=Submission.attempts - 1)
            .execution_options(synchronize_session=False)).rowcount == 1


def requeue(factory: sessionmaker, sub_id: str) -> str:
    """Operator action: a FAILED submission back to PENDING, its attempts reset."""
    with write_session(factory) as session:
        sub = session.get(Submission, sub_id)
        if sub is None:
            raise ImhiError(f"no submission {sub_id!r}: list them with imhi-bench status")
        if sub.status != FAILED:
            raise ImhiError(f"submission {sub_id} is {sub.status}: only FAILED submissions "
                            "are requeued (a stale RUNNING one returns by itself)")
        session.execute(update(Submission).where(Submission.id == sub_id,
                                                 Submission.status == FAILED)
                        .values(status=PENDING, attempts=0, worker=None, finished=None,
                                error=None)
                        .execution_options(synchronize_session=False))
        return sub_id


# --------------------------------------------------------------------------- reading


STATUS_FIELDS: tuple[str, ...] = ("id", "name", "model", "revision", "status", "runs",
                                  "run_id", "weighted_f1", "complete", "coverage", "error",
                                  "submitted", "finished")


def _mean_f1(mean) -> float | None:
    value = mean.get("weighted_f1") if isinstance(mean, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def list_submissions(store: sessionmaker | Engine, sub_id: str | None = None) -> list[dict]:
    """Every submission (or the one `sub_id`), oldest first, with `runs`: how many finished
    runs in the store evaluated it, and `run_id` / `weighted_f1`: the newest of them and its
    mean weighted F1 (None when there is none), with `complete` / `coverage`: whether that run
    scored every sample (`scoring.coverage.run_coverage`: False for a `--limit` run) and why
    not.  `store`: a session factory or an engine."""
    finished = (Run.submission_id.is_not(None), Run.status == "finished")
    runs = (select(Run.submission_id, func.count(Run.id).label("n"),
                   func.max(Run.id).label("newest"))
            .where(*finished).group_by(Run.submission_id).subquery())
    # dates as stored (`raw`): a damaged one (SQLite keeps any text) would otherwise raise
    # while the rows are fetched, and take `status` and the queue page down with it
    columns = list(Submission.__table__.columns)
    query = (select(*(raw(c) if c.key in TIME_COLUMNS else c for c in columns),
                    func.coalesce(runs.c.n, 0), runs.c.newest, raw(Run.mean),
                    Run.complete, Run.coverage)
             .outerjoin(runs, runs.c.submission_id == Submission.id)
             .outerjoin(Run, Run.id == runs.c.newest)
             .order_by(Submission.submitted, Submission.id))
    if sub_id is not None:
        query = query.where(Submission.id == sub_id)
    bind = store if isinstance(store, Engine) else store.kw["bind"]
    out = []
    with Session(bind=bind) as session:
        for row in session.execute(query):
            sub = dict(zip((c.key for c in columns), row[:len(columns)], strict=True))
            n, newest, mean, complete, coverage = row[len(columns):]
            unreadable = []
            for key in TIME_COLUMNS:
                sub[key], ok = read_time(sub[key])
                if not ok:
                    unreadable.append(key)  # shown as missing, and named
            # a damaged row's mean (not JSON) is no mean: the listing still shows
            out.append({**sub, "runs": int(n), "run_id": newest,
                        "weighted_f1": _mean_f1(read_json(mean)[0]),
                        "complete": complete, "coverage": coverage, "unreadable": unreadable})
    return out


def run_ids(factory: sessionmaker, sub_id: str) -> list[int]:
    with factory() as session:
        return list(session.scalars(select(Run.id).where(Run.submission_id == sub_id)
                                    .order_by(Run.id)))
