"""`imhi-bench leaderboard`: serve the Streamlit leaderboard on the results store."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys

from imhi_bench.cli.options import add_db_args
from imhi_bench.core.errors import ImhiError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard", help="serve the leaderboard web app (Streamlit)",
        description="Serve the IMHI leaderboard (Streamlit) on the results store; stop it with "
        "Ctrl-C.  Needs the leaderboard extra: pip install 'imhi-bench[leaderboard]'.",
    )
    add_db_args(p)
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 to share on a network)")
    p.set_defaults(func=run)


def streamlit_command(port: int, host: str) -> list[str]:
    # find_spec locates the app without importing it (and Streamlit) in this process.
    app = importlib.util.find_spec("imhi_bench.leaderboard.app").origin
    return [
        sys.executable, "-m", "streamlit", "run", app,
        "--server.port", str(port), "--server.address", host,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]


def run(args: argparse.Namespace) -> int:
    from imhi_bench.store.engine import DB_URL_ENV, display_url, open_store, resolve_db_url
    from imhi_bench.store.reported import NOT_LOADED, reported_run_count

    if not 1 <= args.port <= 65535:
        raise ImhiError(f"--port {args.port} is not a port: use 1-65535")
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise ImhiError(
            "the leaderboard needs Streamlit: pip install 'imhi-bench[leaderboard]'"
        ) from None
    url = resolve_db_url(args.db)
    factory = open_store(url)  # create or upgrade it now, so a bad URL fails here in one line
    if not reported_run_count(factory):
        print(NOT_LOADED, flush=True)
    print(f"leaderboard on http://{args.host}:{args.port} (store {display_url(url)}); "
          "Ctrl-C stops it", flush=True)
    # The app reads the URL the way every command does; passing it in the environment keeps
    # a password out of the process list.
    env = {**os.environ, DB_URL_ENV: url}
    command = streamlit_command(args.port, args.host)
    if os.name == "posix":
        # Become the server: Ctrl-C and kill reach Streamlit itself, and no orphan is left.
        os.execve(command[0], command, env)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
