"""The results store's tables and the vocabularies their columns take.

Models, runs, per-set results, prompts and samples, and the submission queue (`Submission`;
its logic is in `imhi_bench.queue.jobs`).  Times are stored as naive UTC
(`imhi_bench.core.clock.utcnow`).  A change here needs a migration: see
`imhi_bench.store.engine`.
"""

from __future__ import annotations

import datetime as _dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from imhi_bench.benchmark.sets import TRAINING_DATA  # noqa: F401  (a column's vocabulary)
from imhi_bench.core.clock import utcnow

MODEL_TYPES: tuple[str, ...] = ("fine-tuned", "base", "API", "discriminative")
RUN_STATUSES: tuple[str, ...] = ("finished", "failed")
SOURCES: tuple[str, ...] = ("reported", "reproduced")
# Submission queue states (imhi_bench.queue.jobs): PENDING -> RUNNING -> FINISHED | FAILED, and
# RUNNING -> PENDING when a worker stops heartbeating.
SUBMISSION_STATUSES: tuple[str, ...] = ("PENDING", "RUNNING", "FINISHED", "FAILED")

MODEL_FIELDS: tuple[str, ...] = ("name", "path", "revision", "type", "params", "precision",
                                 "base_model", "license", "training_data")
RUN_FIELDS: tuple[str, ...] = ("backend", "tasks", "format", "setting", "generation_config",
                               "provenance", "status", "started_at", "finished_at")


# --------------------------------------------------------------------------- tables

# Named constraints, so Alembic's batch mode can alter SQLite tables later.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "revision", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Empty string rather than NULL: NULLs never collide in a unique constraint.
    path: Mapped[str] = mapped_column(String(1000), default="")  # local path or hub id
    revision: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str | None] = mapped_column(String(20))  # MODEL_TYPES
    params: Mapped[int | None] = mapped_column(BigInteger)  # parameter count
    precision: Mapped[str | None] = mapped_column(String(20))
    base_model: Mapped[str | None] = mapped_column(String(200))
    license: Mapped[str | None] = mapped_column(String(100))
    training_data: Mapped[str | None] = mapped_column(String(20))  # TRAINING_DATA
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="model", passive_deletes=True)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"),
                                          index=True)
    source: Mapped[str] = mapped_column(String(12), index=True)  # SOURCES
    reference: Mapped[str | None] = mapped_column(String(300))  # citation of a reported run
    backend: Mapped[str | None] = mapped_column(String(50))
    tasks: Mapped[list | None] = mapped_column(JSON)  # set names evaluated
    format: Mapped[str | None] = mapped_column(String(20))  # sets.FORMATS
    setting: Mapped[str] = mapped_column(String(100), default="")  # e.g. "zero-shot"
    generation_config: Mapped[dict | None] = mapped_column(JSON)
    provenance: Mapped[dict | None] = mapped_column(JSON)
    mean: Mapped[dict | None] = mapped_column(JSON)  # the score JSON's "mean" block
    status: Mapped[str] = mapped_column(String(12), default="finished")  # RUN_STATUSES
    started_at: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    recorded_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    # The queued submission this run evaluated (imhi_bench.queue.jobs).  A plain indexed column,
    # not a foreign key: adding one to SQLite means rebuilding `runs`, whose DROP would
    # cascade into samples and set_results.
    submission_id: Mapped[str | None] = mapped_column(String(120), index=True)
    # Whether the run scored every sample of every set it claims (`scoring.coverage.run_coverage`,
    # computed when it is recorded): only complete runs are ranked on the leaderboard.
    # NULL = unknown (nothing says how many samples a set has): not ranked either.
    # how its numbers were made (core.protocol): the short id and the whole protocol
    protocol_id: Mapped[str | None] = mapped_column(String(40), index=True)
    protocol: Mapped[dict | None] = mapped_column(JSON)
    complete: Mapped[bool | None] = mapped_column(Boolean)
    coverage: Mapped[str | None] = mapped_column(String(300))  # why partial or unknown

    model: Mapped[Model] = relationship(back_populates="runs")


class SetResult(Base):
    __tablename__ = "set_results"
    __table_args__ = (UniqueConstraint("run_id", "set_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    set_name: Mapped[str] = mapped_column(String(40))  # as in sets.SET_NAMES
    weighted_f1: Mapped[float | None] = mapped_column(Float)  # percent
    weighted_f1_lo: Mapped[float | None] = mapped_column(Float)  # bootstrap CI bounds
    weighted_f1_hi: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    macro_f1: Mapped[float | None] = mapped_column(Float)
    unparseable: Mapped[int | None] = mapped_column(Integer)
    n: Mapped[int | None] = mapped_column(Integer)
    bart_score: Mapped[float | None] = mapped_column(Float)
    bertscore_f1: Mapped[float | None] = mapped_column(Float)
    rouge_l: Mapped[float | None] = mapped_column(Float)
    consistency: Mapped[float | None] = mapped_column(Float)
    labeler: Mapped[str | None] = mapped_column(String(300))
    extra: Mapped[dict | None] = mapped_column(JSON)  # score JSON keys without a column


class Prompt(Base):
    """Prompt texts, stored once however many runs use them (samples hold the hash)."""

    __tablename__ = "prompts"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the text
    text: Mapped[str] = mapped_column(Text)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_run_id_set_name", "run_id", "set_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    set_name: Mapped[str] = mapped_column(String(40))
    doc_id: Mapped[int] = mapped_column(Integer)  # 0-based row in the released file
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    generation: Mapped[str | None] = mapped_column(Text)
    gold: Mapped[str | None] = mapped_column(Text)
    gold_label: Mapped[str | None] = mapped_column(String(200))
    label: Mapped[str | None] = mapped_column(String(200))  # extracted; None = unparseable
    correct: Mapped[bool | None] = mapped_column(Boolean)
    bart_score: Mapped[float | None] = mapped_column(Float)
    bertscore_f1: Mapped[float | None] = mapped_column(Float)
    rouge_l: Mapped[float | None] = mapped_column(Float)
    consistency: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict | None] = mapped_column(JSON)


class Submission(Base):
    """A checkpoint submitted for evaluation (`imhi-bench submit`), and where it is in the
    queue.  Its runs are the `runs` rows with its id in `submission_id`."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_status_submitted", "status", "submitted"),)

    id: Mapped[str] = mapped_column(String(120), primary_key=True)  # <name>-<key prefix>
    name: Mapped[str] = mapped_column(String(100), unique=True)
    model: Mapped[str] = mapped_column(String(1000))  # absolute folder or hub id (the base)
    revision: Mapped[str] = mapped_column(String(200))  # hub commit or "sha256:<content hash>"
    precision: Mapped[str] = mapped_column(String(8))  # bf16 | fp16 | fp32
    backend: Mapped[str] = mapped_column(String(20))
    adapter: Mapped[str] = mapped_column(String(1000), default="")  # "" when none
    adapter_revision: Mapped[str] = mapped_column(String(200), default="")
    # sha256 of (model, revision, precision, backend, adapter): the deduplication key.
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str | None] = mapped_column(String(20))  # MODEL_TYPES
    params: Mapped[int | None] = mapped_column(BigInteger)
    base_model: Mapped[str | None] = mapped_column(String(200))
    license: Mapped[str | None] = mapped_column(String(100))
    training_data: Mapped[str | None] = mapped_column(String(20))  # TRAINING_DATA
    submitter: Mapped[str | None] = mapped_column(String(200))
    # Only a worker started with --trust-remote-code claims these.
    needs_remote_code: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_pickle: Mapped[bool] = mapped_column(Boolean, default=False)
    manifest: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(12), default="PENDING")  # SUBMISSION_STATUSES
    worker: Mapped[str | None] = mapped_column(String(200))  # who holds the claim
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    submitted: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    heartbeat: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    finished: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)  # one line, for FAILED
