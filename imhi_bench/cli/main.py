"""The `imhi-bench` command line.  Each sub-command lives in `imhi_bench/cli/<name>.py` and
exposes `register(subparsers)`; heavy libraries are imported inside the command so that
`imhi-bench --help` stays instant.

`main` is the one place errors reach the user: an `ImhiError` or any other exception becomes
the single line `imhi-bench: error: ...` with exit status 2 (the traceback only under
`--debug` or `IMHI_DEBUG=1`), Ctrl-C and SIGTERM stop the command cleanly (exit 130 / 143),
and a closed pipe (`... | head -1`) ends it quietly, as other command-line tools do.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from imhi_bench import __version__
from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.core.errors import ImhiError, first_line

DEBUG_ENV = "IMHI_DEBUG"

# Order here is the order in `--help`.
COMMAND_MODULES: tuple[str, ...] = (
    "imhi_bench.cli.data",
    "imhi_bench.cli.eval",
    "imhi_bench.cli.cache",
    "imhi_bench.cli.train",
    "imhi_bench.cli.contamination",
    "imhi_bench.cli.baseline",
    "imhi_bench.cli.score",
    "imhi_bench.cli.compare",
    "imhi_bench.cli.export",
    "imhi_bench.cli.labeler",
    "imhi_bench.cli.meta_eval",
    "imhi_bench.cli.db",
    "imhi_bench.cli.leaderboard",
    "imhi_bench.cli.protocol",
    "imhi_bench.cli.submit",
    "imhi_bench.cli.worker",
    "imhi_bench.cli.status",
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the same clean stop (generations made so far
    stay cached, nothing half-written), so a background job can be stopped too."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the CLI's one-line form (argparse prints the whole usage
    block first, which for `eval` is 20 lines above the one that matters)."""

    def error(self, message: str):
        self.exit(2, f"imhi-bench: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imhi-bench",
        description=(
            "Evaluate LLMs on IMHI, the interpretable mental-health analysis benchmark "
            "(MentaLLaMA, Yang et al., WWW 2024). " + NON_CLINICAL_NOTICE
        ),
    )
    parser.add_argument("--version", action="version", version=f"imhi-bench {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"print the traceback of an error (also ${DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _debug(args: argparse.Namespace | None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _quiet_broken_pipe() -> None:
    # Whatever is still buffered for the closed pipe would raise again at exit: point stdout
    # at /dev/null so the interpreter's final flush is silent.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _ensure_data(args: argparse.Namespace) -> None:
    """Fetch the pinned release on first use, for the commands that read it (see
    `cli.options.add_data_dir`); an explicit --data-dir or $IMHI_DATA_DIR skips it."""
    want = getattr(args, "fetch_data", None)
    if not want:
        return
    from imhi_bench.benchmark.fetch import ensure_release

    ensure_release(getattr(args, "data_dir", None), train=want == "train")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (tests may call main from one): leave it
        pass
    try:
        # checks a command can make in a moment (its store URL, say) come before fetching
        precheck = getattr(args, "precheck", None)
        if precheck is not None:
            precheck(args)
        _ensure_data(args)
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return rc
    except ImhiError as e:
        if _debug(args):
            traceback.print_exc()
        print(f"imhi-bench: error: {first_line(e, limit=2000)}", file=sys.stderr)
        return 2
    except Terminated:
        print("imhi-bench: interrupted (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("imhi-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
    except (SystemExit, GeneratorExit):
        raise
    except Exception as e:  # noqa: BLE001 -- the one place every other error becomes one line
        if _debug(args):
            traceback.print_exc()
        hint = "" if _debug(args) else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
        print(f"imhi-bench: error: {type(e).__name__}: {first_line(e)}{hint}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
