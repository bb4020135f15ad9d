"""Where the results store is and how it is opened: URL resolution, the engine (SQLite in
WAL mode with a busy timeout, or any SQLAlchemy database), the Alembic migrations, and the
write transaction every writer uses.

URL: `--db` > `$IMHI_DB_URL` > `imhi.sqlite` in the per-user data dir.  A bare file path is
taken as a SQLite file.  The schema is managed by the Alembic migrations shipped in
`imhi_bench/store/migrations`; `open_store` brings any store to the current schema, so
every command that touches the store can start from nothing.  Opening or upgrading never
inserts rows: the paper's reported rows are loaded explicitly, by `imhi-bench db init`
(`imhi_bench.store.reported.load_reported`).

For a new migration after changing the tables (`imhi_bench.store.tables`), upgrade a
scratch store to the previous head, then (and review the generated file, bump
HEAD_REVISION):
    from alembic import command
    cfg = alembic_config("sqlite:///scratch.sqlite")
    command.revision(cfg, "what changed", autogenerate=True, rev_id="0005")
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.sqlite_wal import enable_wal
from imhi_bench.core.urls import mask_url

DB_URL_ENV = "IMHI_DB_URL"
DB_FILE_NAME = "imhi.sqlite"
# The newest migration in imhi_bench/store/migrations/versions (a test checks they agree):
# lets `open_store` see an up-to-date store with one query instead of loading Alembic.
HEAD_REVISION = "0004"
SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ImhiError(
            f"cannot read the store URL {display_url(url)!r}: give a SQLAlchemy URL such as "
            "sqlite:///path/to/imhi.sqlite or postgresql://user@host/dbname"
        ) from None
    return url


def display_url(url: str) -> str:
    """The URL with any password (or key in its query string) masked, for messages: the
    one masking of every URL shown (`core.urls.mask_url`), one SQLAlchemy cannot parse too."""
    return mask_url(url) or url


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


# PostgreSQL writers take one transaction-scoped advisory lock, the counterpart of SQLite's
# BEGIN IMMEDIATE: without it two transactions that both look a row up (a model, a prompt,
# the paper's rows) and insert it when absent race, and one fails on the unique constraint.
# Readers never wait for it; the queue's row locks still order claims (queue.jobs).
PG_WRITE_LOCK = 0x494D4849  # "IMHI"


def _postgresql_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("imhi_write"):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


def check_url(url: str | None = None) -> None:
    """Refuse a store URL that cannot name a store (its syntax, database kind or driver)
    without connecting or writing anything: the check a command makes in a moment, before
    the first-use data fetch; `check_store` opens the store later."""
    _create_engine(resolve_db_url(url)).dispose()


def _create_engine(url: str) -> Engine:
    """`create_engine`, with a bad URL, database kind or missing driver as one line.  It
    neither connects nor writes."""
    try:
        return create_engine(make_url(url))
    except NoSuchModuleError:
        raise ImhiError(
            f"unknown database kind in {display_url(url)!r}: use sqlite:///FILE or another "
            "SQLAlchemy URL (postgresql://...)"
        ) from None
    except (ArgumentError, ValueError) as e:  # after NoSuchModuleError, a subclass
        raise ImhiError(
            f"cannot read the store URL {display_url(url)!r} ({first_line(e)}): use "
            "sqlite:///FILE, a file path, or another SQLAlchemy URL (postgresql://...)"
        ) from None
    except ModuleNotFoundError as e:
        raise ImhiError(
            f"the database driver for {display_url(url)!r} is not installed ({e.name}): "
            f"pip install {e.name}"
        ) from None


def make_engine(url: str) -> Engine:
    """An engine for `url` (creating a SQLite file's folder); does not touch the schema."""
    engine = _create_engine(url)
    parsed = engine.url
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
        event.listen(engine, "handle_error", _sqlite_error)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "begin", _postgresql_begin)
    return engine


# What SQLite says of a file that is not (or no longer) a database: random bytes, a
# truncated copy, an overwritten page.  The error can come at the first connection or at the
# first query that reads a damaged page, so it is caught on every statement of the engine.
_DAMAGED = ("file is not a database", "database disk image is malformed",
            "file is encrypted or is not a database")


def is_damaged(e: BaseException) -> bool:
    text = str(getattr(e, "orig", None) or e).lower()
    return any(d in text for d in _DAMAGED)


def damaged_store_error(url: str, e: BaseException) -> ImhiError:
    db = make_url(url).database or url
    return ImhiError(
        f"the results store {db} is damaged ({_one_line(e)}): restore it from a backup, or "
        f"point --db / ${DB_URL_ENV} at another file (a new path starts an empty store)"
    )


def _sqlite_error(context: ExceptionContext) -> None:
    # SQLAlchemy's handle_error hook: a handler may raise its own exception in place of the
    # DBAPI error, which replaces a 100-line traceback with one line naming the file.
    if is_damaged(context.original_exception):
        raise damaged_store_error(
            context.engine.url.render_as_string(hide_password=True),
            context.original_exception)


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
    """Bring the store to the newest schema; inserts no rows (the paper's rows are loaded
    by `imhi_bench.store.reported.load_reported`, i.e. `imhi-bench db init`).  Returns
    (revision before, revision after).  Safe when several processes start at once: the
    check and the upgrade happen under the write lock."""
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


def check_store(url: str | None = None) -> None:
    """Open the store at `url` (creating or upgrading it, as `open_store`) and, for SQLite,
    read every page of it (`PRAGMA quick_check`): for a command about to spend minutes
    before it records anything (`eval`), so that a damaged page fails now, in one line,
    rather than when the results are written.  Costs about a second per 100 MB."""
    engine = store_engine(open_store(url))
    try:
        if engine.dialect.name != "sqlite":
            return
        url = engine.url.render_as_string(hide_password=False)
        try:
            with engine.connect() as conn:
                problems = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")]
        except OperationalError as e:
            raise ImhiError(f"cannot open the results store {display_url(url)}: "
                            f"{_one_line(e)}: check --db / ${DB_URL_ENV}") from None
        if problems != ["ok"]:
            raise damaged_store_error(url, Exception(problems[0] if problems else "no answer"))
        _check_writable(engine, url)
    finally:
        engine.dispose()


def _check_writable(engine: Engine, url: str) -> None:
    """A write that is rolled back: a store that opens and reads but cannot be written (a
    read-only file, mount or URI) fails now, not when the finished run is recorded."""
    try:
        with engine.connect().execution_options(imhi_write=True) as conn:
            tx = conn.begin()
            try:
                conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
            finally:
                tx.rollback()
    except DBAPIError as e:  # sqlite: OperationalError; a read-only server role: others
        if "locked" in _one_line(e).lower():  # another writer holds it now: busy, writable
            return
        raise ImhiError(f"the results store {display_url(url)} cannot be written "
                        f"({_one_line(e)}): point --db / ${DB_URL_ENV} at a writable store, "
                        "or pass --no-db") from None


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
