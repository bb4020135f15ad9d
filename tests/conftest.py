"""Shared test setup: offline Hugging Face, every per-user folder a temp dir, and the IMHI
data dir.

The released IMHI files are read from ../shared/imhi beside the project (or $IMHI_DATA_DIR);
they are never copied into the repository.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMHI = ROOT.parent / "shared" / "imhi"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("IMHI_DATA_DIR", str(SHARED_IMHI))
# Nothing a test does may touch the user's files: the store, the generation cache, the
# submissions folder, the HF home, and every per-user folder (platformdirs reads XDG_*, and
# libraries such as matplotlib or Chromium write under HOME) are a session temp dir's.
# tests/test_user_dirs.py checks what a command writes when these are left to default.
_session = Path(tempfile.mkdtemp(prefix="imhi-test-session-"))
_DIRS = {"HOME": "home", "XDG_CACHE_HOME": "xdg-cache", "XDG_DATA_HOME": "xdg-data",
         "XDG_CONFIG_HOME": "xdg-config", "XDG_STATE_HOME": "xdg-state",
         "HF_HOME": "hf", "MPLCONFIGDIR": "matplotlib", "IMHI_CACHE_DIR": "generation-cache",
         "IMHI_SUBMISSIONS_DIR": "submissions"}
for _var, _name in _DIRS.items():
    (_session / _name).mkdir()
    os.environ[_var] = str(_session / _name)
os.environ["IMHI_DB_URL"] = "sqlite:///" + str(_session / "store.sqlite")


@pytest.fixture(scope="session")
def imhi_dir() -> Path:
    path = Path(os.environ["IMHI_DATA_DIR"])
    if not (path / "test_data").is_dir():
        pytest.fail(f"IMHI data not found at {path}: set IMHI_DATA_DIR or put it at {SHARED_IMHI}")
    return path


# --------------------------------------------------------------------------- PostgreSQL
# A throwaway server for the session (initdb + pg_ctl on a Unix socket in a temp dir), shared
# by the queue's and the store's tests.  Where PostgreSQL is not installed its tests skip;
# under CI (CI=true, as .ci/run sets, which installs it) they fail instead, so CI never passes
# without having run them.  Install: apt-get install -y postgresql (Debian puts the binaries
# in /usr/lib/postgresql/<version>/bin, searched here), pip install 'imhi-bench[postgres]'.

def _pg_unavailable(why: str):
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the PostgreSQL tests: {why}")
    pytest.skip(f"PostgreSQL tests: {why}")


def pg_tools() -> tuple[str, str] | str:
    """(initdb, pg_ctl), or why they cannot be used."""
    import glob
    import shutil

    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'imhi-bench[postgres]')"
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        initdb, pg_ctl = os.path.join(bin_dir, "initdb"), os.path.join(bin_dir, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    return "initdb/pg_ctl not found (apt-get install -y postgresql, as .ci/run does)"


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server: its base URL (database `postgres`)."""
    import pwd
    import shutil
    import socket
    import subprocess

    tools = pg_tools()
    if isinstance(tools, str):
        _pg_unavailable(tools)
    initdb, pg_ctl = tools
    root = Path(tempfile.mkdtemp(prefix="imhi-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _pg_unavailable("running as root and there is no postgres user to run the server")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "imhi", "--no-sync"],
                   check=True, capture_output=True)
    opts = f"-k {root} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://imhi@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_pg_database(server: str) -> str:
    """A fresh, empty database on the session's server: its URL."""
    import uuid

    from sqlalchemy import create_engine, text

    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server.replace("/postgres?", f"/{name}?")


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh database on the test server."""
    return new_pg_database(pg_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store_url(request, tmp_path):
    """A function giving the URL of a new, empty store, on SQLite and on PostgreSQL in turn
    (tests using it run once per engine)."""
    if request.param == "sqlite":
        return lambda name="store": f"sqlite:///{tmp_path / name}.sqlite"
    server = request.getfixturevalue("pg_server")
    return lambda name="store": new_pg_database(server)
