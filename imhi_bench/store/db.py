"""The results store: models, runs, per-set results and samples, and the submission queue
(`Submission`; its logic is in `imhi_bench.queue.jobs`), in any SQLAlchemy database (SQLite by
default).

URL: `--db` > `$IMHI_DB_URL` > `imhi.sqlite` in the per-user data dir.  A bare file path is
taken as a SQLite file.  The schema is managed by the Alembic migrations shipped in
`imhi_bench/migrations`; `open_store` brings any store to the current schema (and loads the
paper-reported rows into a new one), so every command that touches the store can start
from nothing.

Write path: `record_run` validates everything first, then writes the model, the run, its
per-set results and samples in one transaction, so a crash or a kill leaves no half run.
Paper numbers go in only through `load_reported`, as runs with source "reported"; anything
`record_run` writes is "reproduced": the two are never mixed.

Times are stored as naive UTC.  For a new migration after changing the tables here, upgrade
a scratch store to the previous head, then (and review the generated file, bump HEAD_REVISION):
    from alembic import command
    cfg = alembic_config("sqlite:///scratch.sqlite")
    command.revision(cfg, "what changed", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from imhi_bench.benchmark.sets import FORMATS, get_set
from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.sqlite_wal import enable_wal

DB_URL_ENV = "IMHI_DB_URL"
DB_FILE_NAME = "imhi.sqlite"
# The newest migration in imhi_bench/migrations/versions (a test checks they agree): lets
# `open_store` see an up-to-date store with one query instead of loading Alembic.
HEAD_REVISION = "0002"
SQLITE_BUSY_TIMEOUT_MS = 30_000

MODEL_TYPES: tuple[str, ...] = ("fine-tuned", "base", "API", "discriminative")
TRAINING_DATA: tuple[str, ...] = ("IMHI", "IMHI-general", "other")
RUN_STATUSES: tuple[str, ...] = ("finished", "failed")
SOURCES: tuple[str, ...] = ("reported", "reproduced")
# Submission queue states (imhi_bench.queue.jobs): PENDING -> RUNNING -> FINISHED | FAILED, and
# RUNNING -> PENDING when a worker stops heartbeating.
SUBMISSION_STATUSES: tuple[str, ...] = ("PENDING", "RUNNING", "FINISHED", "FAILED")

# Score JSON keys with a column of their own (set results and samples); others go to `extra`.
QUALITY_KEYS: dict[str, str] = {  # score JSON key -> column
    "bart_score": "bart_score",
    "bertscore_f1": "bertscore_f1",
    "rougeL": "rouge_l",
    "consistency": "consistency",
}
_SET_FLOAT_KEYS = ("weighted_f1", "accuracy", "macro_f1")
_SET_INT_KEYS = ("unparseable", "n")
_SET_KNOWN_KEYS = {*_SET_FLOAT_KEYS, *_SET_INT_KEYS, "weighted_f1_ci", "labeler", *QUALITY_KEYS}
_SAMPLE_TEXT_KEYS = ("generation", "gold", "gold_label", "label")
_SAMPLE_KNOWN_KEYS = {"set", "doc_id", "prompt", "prompt_hash", "correct", *_SAMPLE_TEXT_KEYS,
                      *QUALITY_KEYS}

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


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


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
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=_utcnow)

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
    recorded_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=_utcnow)
    # The queued submission this run evaluated (imhi_bench.queue.jobs).  A plain indexed column,
    # not a foreign key: adding one to SQLite means rebuilding `runs`, whose DROP would
    # cascade into samples and set_results.
    submission_id: Mapped[str | None] = mapped_column(String(120), index=True)

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
    submitted: Mapped[_dt.datetime] = mapped_column(DateTime, default=_utcnow)
    claimed_at: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    heartbeat: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    finished: Mapped[_dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)  # one line, for FAILED


# --------------------------------------------------------------------------- opening


def default_db_url() -> str:
    import platformdirs

    return "sqlite:///" + str(Path(platformdirs.user_data_dir("imhi-bench")) / DB_FILE_NAME)


def resolve_db_url(url: str | None = None) -> str:
    """`url` if given, else `$IMHI_DB_URL`, else the per-user SQLite file.  A value without
    "://" is a SQLite file path."""
    url = url or os.environ.get(DB_URL_ENV) or default_db_url()
    url = url.strip()
    if "://" not in url:
        url = "sqlite:///" + str(Path(url).expanduser().resolve())
    try:
        make_url(url)
    except ArgumentError:
        raise ImhiError(
            f"invalid database URL {url!r}: give a SQLAlchemy URL such as "
            "sqlite:///path/to/imhi.sqlite or postgresql://user@host/dbname"
        ) from None
    return url


def display_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin): the sqlite3 module's own
    # transaction handling breaks SAVEPOINT and transactional DDL.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    # The busy timeout makes a second writer wait for the lock instead of failing at once.
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    enable_wal(cur, SQLITE_BUSY_TIMEOUT_MS / 1000)  # the leaderboard reads while eval writes
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
    # reads and then writes can fail at once with "database is locked" when another writer
    # committed in between, where the busy timeout does not help.
    if conn.get_execution_options().get("imhi_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for `url` (creating a SQLite file's folder); does not touch the schema."""
    parsed = make_url(url)
    try:
        engine = create_engine(parsed)
    except NoSuchModuleError:
        raise ImhiError(
            f"unknown database kind in {display_url(url)!r}: use sqlite:///FILE or another "
            "SQLAlchemy URL (postgresql://...)"
        ) from None
    except ModuleNotFoundError as e:
        raise ImhiError(
            f"the database driver for {display_url(url)!r} is not installed ({e.name}): "
            f"pip install {e.name}"
        ) from None
    if engine.dialect.name == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            folder = Path(db).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ImhiError(
                    f"cannot create the store's folder {folder}: {e.strerror}: "
                    "pass --db with a writable location"
                ) from None
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def alembic_config(url: str | None = None, connection: Connection | None = None):
    """Alembic configuration for the packaged migrations; no alembic.ini needed."""
    from alembic.config import Config

    cfg = Config()
    folder = str(Path(__file__).resolve().parent / "migrations")
    cfg.set_main_option("script_location", folder.replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_schema(engine: Engine) -> tuple[str | None, str]:
    """Bring the store to the newest schema; a new store also gets the paper-reported rows.
    Returns (revision before, revision after).  Safe when several processes start at once:
    the check and the upgrade happen under the write lock."""
    url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as conn:
            before = _current_revision(conn)
            conn.rollback()
        if before == HEAD_REVISION:
            return before, before
        with engine.connect().execution_options(imhi_write=True) as conn, conn.begin():
            before = _current_revision(conn)
            if before == HEAD_REVISION:
                return before, before
            _check_known(before, url)
            from alembic import command

            command.upgrade(alembic_config(connection=conn), "head")
            if before is None:
                with Session(bind=conn) as session:
                    _write_reported(session)
                    session.flush()
            return before, _current_revision(conn) or HEAD_REVISION
    except OperationalError as e:
        raise ImhiError(
            f"cannot open the results store {display_url(url)}: {_one_line(e)}: check --db / "
            f"${DB_URL_ENV}"
        ) from None


def _check_known(revision: str | None, url: str) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    try:
        scripts.get_revision(revision)
    except Exception:
        raise ImhiError(
            f"the store {display_url(url)} has schema revision {revision!r}, newer than this "
            "imhi-bench knows: upgrade imhi-bench, or use another --db"
        ) from None


def _one_line(e: Exception) -> str:
    return first_line(getattr(e, "orig", None) or e)


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """A session factory for the store at `url` (resolved as in `resolve_db_url`), created
    or upgraded first.  Use `with factory.begin() as session: ...`; the engine is
    `store_engine(factory)`."""
    engine = make_engine(resolve_db_url(url))
    upgrade_schema(engine)
    return sessionmaker(bind=engine, expire_on_commit=False)


def store_engine(factory: sessionmaker[Session]) -> Engine:
    return factory.kw["bind"]


StoreTarget = Session | sessionmaker | Engine | str | None


@contextmanager
def write_session(target: StoreTarget) -> Iterator[Session]:
    """A session inside one write transaction, committed at the end of the block and rolled
    back if it raises.  `target` is a Session (a transaction already open on it becomes a
    savepoint), a session factory, an engine, or a URL (None: the default store)."""
    try:
        with _write_session(target) as session:
            yield session
    except OperationalError as e:
        raise ImhiError(
            f"could not write to the results store ({_one_line(e)}); nothing was recorded: "
            f"retry, or check --db / ${DB_URL_ENV}"
        ) from None


@contextmanager
def _write_session(target: StoreTarget) -> Iterator[Session]:
    if isinstance(target, Session):
        if target.in_transaction():
            with target.begin_nested():
                yield target
        else:
            with target.begin():
                _take_write_lock(target)
                yield target
        return
    if isinstance(target, Engine):
        upgrade_schema(target)
        factory = sessionmaker(bind=target, expire_on_commit=False)
    elif isinstance(target, sessionmaker):
        factory = target
    else:
        factory = open_store(target)
    with factory() as session, session.begin():
        _take_write_lock(session)
        yield session


def _take_write_lock(session: Session) -> None:
    session.connection(execution_options={"imhi_write": True})


# --------------------------------------------------------------------------- validation


def _finite(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImhiError(f"{what} must be a number, not {value!r}: fix the score JSON")
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or value < 0:
        raise ImhiError(f"{what} must be a whole number >= 0, not {value!r}: fix the score JSON")
    return int(value)


def _without_nan(value: Any) -> Any:
    # NaN/inf are not JSON: a metric that could not be computed is stored as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(v) for v in value]
    return value


def _json_safe(value: Any, what: str) -> Any:
    value = _without_nan(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ImhiError(f"{what} cannot be stored as JSON ({e}): pass plain JSON values") \
            from None
    return value


def _set_name(name: Any, what: str) -> str:
    if not isinstance(name, str):
        raise ImhiError(f"{what}: set name must be text, not {name!r}")
    try:
        return get_set(name).name
    except ImhiError as e:
        raise ImhiError(f"{what}: {e}") from None


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str | None:
    if value is None or value == "":
        return None
    for c in choices:
        if isinstance(value, str) and value.strip().lower() == c.lower():
            return c
    raise ImhiError(f"{what} {value!r} is not known: use one of {', '.join(choices)}")


def parse_param_count(value: Any) -> int | None:
    """13000000000, "13B", "125M", "1.5b" -> a parameter count; None/"" -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ImhiError(f"parameter count {value!r} must be >= 0")
        return int(value)
    if isinstance(value, str):
        s = value.strip().upper().replace("_", "").replace(",", "")
        scale = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}.get(s[-1:], 1)
        number = s[:-1] if scale != 1 else s
        try:
            count = float(number)
        except ValueError:
            count = -1.0
        if count >= 0 and math.isfinite(count):
            return int(round(count * scale))
    raise ImhiError(
        f"parameter count {value!r} is not understood: write e.g. 7B, 125M or 7000000000"
    )


def _when(value: Any, what: str) -> _dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ImhiError(f"{what} {value!r} is not an ISO date-time: write e.g. "
                            "2024-05-13T10:00:00Z") from None
    if not isinstance(value, _dt.datetime):
        raise ImhiError(f"{what} must be a date-time, not {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


def _unknown_keys(given: Mapping, known, what: str) -> None:
    extra = sorted(set(given) - set(known))
    if extra:
        raise ImhiError(f"unknown {what} field(s) {', '.join(extra)}: use {', '.join(known)}")


def _text(value: Any, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ImhiError(f"{what} is missing: give it")
        return None
    if not isinstance(value, str):
        raise ImhiError(f"{what} must be text, not {value!r}")
    value = value.strip()
    if len(value) > limit:
        raise ImhiError(f"{what} is longer than {limit} characters: shorten it")
    return value


def _model_row(model: Mapping) -> dict:
    if not isinstance(model, Mapping):
        raise ImhiError("model must be a dict of model fields")
    _unknown_keys(model, MODEL_FIELDS, "model")
    return {
        "name": _text(model.get("name"), "model name", 200, required=True),
        "path": _text(model.get("path"), "model path", 1000) or "",
        "revision": _text(model.get("revision"), "model revision", 200) or "",
        "type": _choice(model.get("type"), MODEL_TYPES, "model type"),
        "params": parse_param_count(model.get("params")),
        "precision": _text(model.get("precision"), "precision", 20),
        "base_model": _text(model.get("base_model"), "base model", 200),
        "license": _text(model.get("license"), "license", 100),
        "training_data": _choice(model.get("training_data"), TRAINING_DATA, "training data"),
    }


def _set_result_rows(results: Mapping) -> list[dict]:
    if not isinstance(results, Mapping) or not isinstance(results.get("sets"), Mapping):
        raise ImhiError('results must be a score JSON with a "sets" object: pass the output of '
                        "imhi-bench score --json")
    if not results["sets"]:
        raise ImhiError("results has no per-set scores: score at least one set first")
    rows, seen = [], set()
    for raw_name, metrics in results["sets"].items():
        name = _set_name(raw_name, "results")
        if name in seen:
            raise ImhiError(f"results lists set {name} twice: keep one")
        seen.add(name)
        where = f"results for {name}"
        if not isinstance(metrics, Mapping):
            raise ImhiError(f"{where} must be an object of metrics")
        ci = metrics.get("weighted_f1_ci")
        if ci is not None and (not isinstance(ci, (list, tuple)) or len(ci) != 2):
            raise ImhiError(f"{where}: weighted_f1_ci must be [low, high], not {ci!r}")
        lo, hi = (None, None) if ci is None else (
            _finite(ci[0], f"{where}: CI low"), _finite(ci[1], f"{where}: CI high"))
        row = {"set_name": name, "weighted_f1_lo": lo, "weighted_f1_hi": hi}
        row.update({k: _finite(metrics.get(k), f"{where}: {k}") for k in _SET_FLOAT_KEYS})
        row.update({k: _count(metrics.get(k), f"{where}: {k}") for k in _SET_INT_KEYS})
        row.update({col: _finite(metrics.get(key), f"{where}: {key}")
                    for key, col in QUALITY_KEYS.items()})
        row["labeler"] = _text(metrics.get("labeler"), f"{where}: labeler", 300)
        extra = {k: v for k, v in metrics.items() if k not in _SET_KNOWN_KEYS}
        row["extra"] = _json_safe(extra, f"{where}: extra metrics") if extra else None
        rows.append(row)
    return rows


def _prompt_hash(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def _sample_rows(samples: list[Mapping], set_names: set[str]) -> tuple[list[dict], dict]:
    """Sample rows and {hash: prompt text} of the prompts they carry."""
    rows, prompts, seen = [], {}, set()
    for i, s in enumerate(samples):
        where = f"sample {i + 1}"
        if not isinstance(s, Mapping):
            raise ImhiError(f"{where} must be an object")
        name = _set_name(s.get("set"), where)
        if name not in set_names:
            raise ImhiError(f"{where} is from set {name}, which results does not score: "
                            "pass the samples of the scored sets only")
        doc_id = s.get("doc_id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, int) or doc_id < 0:
            raise ImhiError(f"{where}: doc_id must be a row number >= 0, not {doc_id!r}")
        if (name, doc_id) in seen:
            raise ImhiError(f"{where}: {name} doc {doc_id} appears twice: keep one")
        seen.add((name, doc_id))
        prompt, phash = s.get("prompt"), s.get("prompt_hash")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise ImhiError(f"{where}: prompt must be text")
            phash = _prompt_hash(prompt)
            prompts[phash] = prompt
        elif phash is not None and not isinstance(phash, str):
            raise ImhiError(f"{where}: prompt_hash must be text")
        row = {"set_name": name, "doc_id": doc_id, "prompt_hash": phash}
        for k in _SAMPLE_TEXT_KEYS:
            v = s.get(k)
            if v is not None and not isinstance(v, str):
                raise ImhiError(f"{where}: {k} must be text, not {v!r}")
            row[k] = v
        correct = s.get("correct")
        if correct is not None and not isinstance(correct, bool):
            raise ImhiError(f"{where}: correct must be true or false, not {correct!r}")
        row["correct"] = correct
        row.update({col: _finite(s.get(key), f"{where}: {key}")
                    for key, col in QUALITY_KEYS.items()})
        extra = {k: v for k, v in s.items() if k not in _SAMPLE_KNOWN_KEYS}
        row["extra"] = _json_safe(extra, f"{where}: extra fields") if extra else None
        rows.append(row)
    return rows, prompts


def _run_row(run: Mapping, results: Mapping, set_names: list[str]) -> dict:
    if not isinstance(run, Mapping):
        raise ImhiError("run must be a dict of run fields")
    if "source" in run:
        raise ImhiError("run source cannot be set: record_run writes reproduced runs only; "
                        "paper numbers come from imhi-bench db init")
    _unknown_keys(run, RUN_FIELDS, "run")
    provenance = run.get("provenance", results.get("provenance"))
    if provenance is not None and not isinstance(provenance, Mapping):
        raise ImhiError("run provenance must be an object")
    fmt = run.get("format") or (provenance or {}).get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ImhiError(f"run format {fmt!r} is not known: use one of {', '.join(FORMATS)}")
    tasks = run.get("tasks")
    tasks = set_names if tasks is None else [_set_name(t, "run tasks") for t in tasks]
    config = run.get("generation_config")
    if config is not None and not isinstance(config, Mapping):
        raise ImhiError("run generation_config must be an object")
    mean = results.get("mean")
    if mean is not None and not isinstance(mean, Mapping):
        raise ImhiError('results "mean" must be an object')
    return {
        "source": "reproduced",
        "backend": _text(run.get("backend"), "run backend", 50),
        "tasks": tasks,
        "format": fmt,
        "setting": _text(run.get("setting"), "run setting", 100) or "",
        "generation_config": _json_safe(dict(config), "generation_config") if config else None,
        "provenance": _json_safe(dict(provenance), "provenance") if provenance else None,
        "mean": _json_safe(dict(mean), 'results "mean"') if mean else None,
        "status": _choice(run.get("status"), RUN_STATUSES, "run status") or "finished",
        "started_at": _when(run.get("started_at"), "run started_at"),
        "finished_at": _when(run.get("finished_at"), "run finished_at") or _utcnow(),
    }


# --------------------------------------------------------------------------- writing


def _get_or_create_model(session: Session, fields: dict) -> Model:
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
    set_rows = _set_result_rows(results)
    set_names = [r["set_name"] for r in set_rows]
    model_fields = _model_row(model)
    run_fields = _run_row(run, results, set_names)
    sample_rows, prompts = _sample_rows(samples or [], set(set_names))

    with write_session(session_or_url) as session:
        model_obj = _get_or_create_model(session, model_fields)
        run_obj = Run(model_id=model_obj.id, **run_fields)
        session.add(run_obj)
        session.flush()
        session.execute(insert(SetResult), [{**r, "run_id": run_obj.id} for r in set_rows])
        _insert_prompts(session, prompts)
        _insert_samples(session, run_obj.id, sample_rows)
        return run_obj.id


def _write_reported(session: Session) -> int:
    """Create or refresh the paper-reported runs (see `imhi_bench.store.reported`)."""
    from imhi_bench.store.reported import REFERENCE, REPORTED

    keep: set[int] = set()
    for entry in REPORTED:
        model = _get_or_create_model(session, _model_row(entry["model"]))
        reference = f"{REFERENCE}, {entry['table']}"
        run = session.scalars(
            select(Run).where(Run.model_id == model.id, Run.source == "reported",
                              Run.reference == reference)
        ).first()
        if run is None:
            run = Run(model_id=model.id, source="reported", reference=reference)
            session.add(run)
        rows = [{"set_name": _set_name(name, "reported"), "weighted_f1": float(value)}
                for name, value in entry["weighted_f1"].items()]
        run.backend = "paper"
        run.tasks = [r["set_name"] for r in rows]
        # The paper's test sets are the released IMHI test data, the instruction files.
        run.format = "instruction"
        run.setting = entry["setting"]
        run.status = "finished"
        run.provenance = {"source": reference}
        session.flush()
        session.execute(delete(SetResult).where(SetResult.run_id == run.id))
        session.execute(insert(SetResult), [{**r, "run_id": run.id} for r in rows])
        keep.add(run.id)
    stale = select(Run.id).where(Run.source == "reported", Run.id.not_in(keep))
    session.execute(delete(SetResult).where(SetResult.run_id.in_(stale)))
    session.execute(delete(Run).where(Run.source == "reported", Run.id.not_in(keep)))
    return len(keep)


def load_reported(session_or_url: StoreTarget = None) -> int:
    """Load (or refresh, idempotently) the paper-reported rows; returns how many runs."""
    with write_session(session_or_url) as session:
        return _write_reported(session)
