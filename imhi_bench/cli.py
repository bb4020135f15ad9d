"""The `imhi-bench` command line.  Each sub-command lives in `imhi_bench/commands/<name>.py`
and exposes `register(subparsers)`; heavy libraries are imported inside the command so that
`imhi-bench --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from imhi_bench import __version__
from imhi_bench.errors import ImhiError
from imhi_bench.sets import NON_CLINICAL_NOTICE

# Order here is the order in `--help`.
COMMAND_MODULES: tuple[str, ...] = (
    "imhi_bench.commands.data",
    "imhi_bench.commands.eval",
    "imhi_bench.commands.cache",
    "imhi_bench.commands.score",
    "imhi_bench.commands.labeler",
    "imhi_bench.commands.meta_eval",
    "imhi_bench.commands.db",
    "imhi_bench.commands.leaderboard",
    "imhi_bench.commands.submit",
    "imhi_bench.commands.worker",
    "imhi_bench.commands.status",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imhi-bench",
        description=(
            "Evaluate LLMs on IMHI, the interpretable mental-health analysis benchmark "
            "(MentaLLaMA, Yang et al., WWW 2024). " + NON_CLINICAL_NOTICE
        ),
    )
    parser.add_argument("--version", action="version", version=f"imhi-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ImhiError as e:
        print(f"imhi-bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imhi-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
