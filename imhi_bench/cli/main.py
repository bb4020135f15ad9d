"""The `imhi-bench` command line.  Each sub-command lives in `imhi_bench/commands/<name>.py`
and exposes `register(subparsers)`; heavy libraries are imported inside the command so that
`imhi-bench --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from imhi_bench import __version__
from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.core.errors import ImhiError

# Order here is the order in `--help`.
COMMAND_MODULES: tuple[str, ...] = (
    "imhi_bench.cli.data",
    "imhi_bench.cli.eval",
    "imhi_bench.cli.cache",
    "imhi_bench.cli.train",
    "imhi_bench.cli.baseline",
    "imhi_bench.cli.score",
    "imhi_bench.cli.labeler",
    "imhi_bench.cli.meta_eval",
    "imhi_bench.cli.db",
    "imhi_bench.cli.leaderboard",
    "imhi_bench.cli.submit",
    "imhi_bench.cli.worker",
    "imhi_bench.cli.status",
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
