"""`imhi-bench leaderboard`: serve the Streamlit leaderboard on the results store, or
(`--csv FILE`) write its ranked table as the app first shows it."""

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
        "leaderboard", help="serve the leaderboard web app (Streamlit), or write its table",
        description="Serve the IMHI leaderboard (Streamlit) on the results store; stop it with "
        "Ctrl-C.  Needs the leaderboard extra: pip install 'imhi-bench[leaderboard]'.  With "
        "--csv, write the ranked table instead, exactly as the app first shows it (complete "
        "runs and the paper's rows, mean over the 8 public-release sets), and exit.",
    )
    add_db_args(p)
    p.add_argument("--csv", metavar="FILE",
                   help="write the app's default ranked table to FILE (CSV, as its Download "
                   "CSV button does; missing values are empty cells) and exit; no server")
    p.add_argument("--protocol", metavar="ID|default|all", default="default",
                   help="with --csv: the protocol whose runs are ranked (default: the default "
                   "protocol, as the app first shows; `all` mixes every run, each row naming "
                   "its protocol; ids: `imhi-bench protocol list`)")
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
        # no traceback for visitors: the app's pages show one line (`page_guard`)
        "--client.showErrorDetails", "none",
    ]


def run(args: argparse.Namespace) -> int:
    from imhi_bench.store.engine import DB_URL_ENV, display_url, open_store, resolve_db_url
    from imhi_bench.store.reported import NOT_LOADED, reported_run_count

    if getattr(args, "csv", None):
        return write_csv(args)
    if not 1 <= args.port <= 65535:
        raise ImhiError(f"--port {args.port} is not a port: use 1-65535")
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise ImhiError(
            "the leaderboard needs Streamlit: pip install 'imhi-bench[leaderboard]'"
        ) from None
    check_address(args.host, args.port)  # Streamlit would fail later, with a traceback
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


def check_address(host: str, port: int) -> None:
    """Refuse, in one line, an address the server could not listen on: a host that is no
    address of this machine, a port in use or not ours to take.  By binding it once, as the
    server will (SO_REUSEADDR, as Tornado: only a live listener counts as in use)."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ImhiError(f"--host {host}: not an address to listen on ({reason}): use "
                        "127.0.0.1, 0.0.0.0 (every interface) or an address of this "
                        "machine") from None
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            why = (f"--port {port} is in use on {host}: stop what listens there (another "
                   "leaderboard?) or choose another --port")
        elif e.errno == errno.EACCES:
            why = (f"--port {port} on {host} needs privileges this user lacks: choose a "
                   "port above 1023")
        elif e.errno == errno.EADDRNOTAVAIL:
            why = (f"--host {host} is not an address of this machine: use 127.0.0.1, "
                   "0.0.0.0 (every interface) or one of its addresses")
        else:
            why = (f"cannot listen on {host}:{port}: {e.strerror or e}: choose another "
                   "--host or --port")
        raise ImhiError(why) from None


def write_csv(args: argparse.Namespace) -> int:
    """The app's default ranked table (`data.default_view`, the function the app's first
    view comes from) as CSV, written whole or not at all."""
    from pathlib import Path

    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.core.fileio import atomic_write_bytes
    from imhi_bench.leaderboard import data
    from imhi_bench.leaderboard.band_data import BAND_NOTE
    from imhi_bench.leaderboard.unreadable import store_note
    from imhi_bench.store.engine import display_url, open_store, resolve_db_url, store_engine
    from imhi_bench.store.reported import NOT_LOADED, reported_run_count

    out = Path(args.csv).expanduser()
    if out.is_dir():
        raise ImhiError(f"--csv {out} is a folder: give a file name, e.g. {out / 'imhi.csv'}")
    url = resolve_db_url(args.db)
    factory = open_store(url)
    if not reported_run_count(factory):
        print(NOT_LOADED)
    engine = store_engine(factory)
    runs = data.load_runs(engine)
    protocol = resolve_protocol_choice(args.protocol, runs)
    view = data.default_view(engine, protocol, csv=True)  # as the app's Download CSV
    try:
        atomic_write_bytes(out, data.to_csv_bytes(view))
    except OSError as e:
        raise ImhiError(f"cannot write {out}: {e.strerror}: choose a writable --csv path") \
            from None
    sets = data.SET_GROUPS[data.DEFAULT_GROUP]
    rows = f"{len(view)} row{'' if len(view) == 1 else 's'}"
    which = ("every protocol, each row naming its own" if protocol == data.ALL_PROTOCOLS
             else f"protocol {protocol}")
    print(f"wrote {out}: {rows} from {display_url(url)} ({which}), ranked by mean weighted F1 "
          f"over {', '.join(sets)} (partial runs left out)")
    print(BAND_NOTE.replace(" show –", " have an empty cell"))
    if note := store_note(runs, data.load_scores(engine)):  # damaged rows: empty cells
        print(note.replace("shown as missing (–)", "written as empty cells"))
    print(NON_CLINICAL_NOTICE)
    return 0


def resolve_protocol_choice(choice: str, runs) -> str:
    """--protocol: "default", "all" or a protocol id (a unique prefix will do) present in the
    store."""
    from imhi_bench.leaderboard.data import ALL_PROTOCOLS
    from imhi_bench.scoring.protocol import DEFAULT_ID

    choice = (choice or "default").strip()
    if choice == "default":
        return DEFAULT_ID
    if choice == ALL_PROTOCOLS:
        return ALL_PROTOCOLS
    ids = sorted({str(p) for p in runs["protocol_id"]} | {DEFAULT_ID})
    hits = [p for p in ids if p.startswith(choice)]
    if len(hits) != 1:
        known = ", ".join(ids) or "none"
        raise ImhiError(f"--protocol {choice}: {'no' if not hits else 'more than one'} "
                        f"protocol in the store matches; use default, all or one of: {known}")
    return hits[0]
