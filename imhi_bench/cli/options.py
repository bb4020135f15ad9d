"""Options shared by several sub-commands, defined once."""

from __future__ import annotations

import argparse

from imhi_bench.benchmark.data import DATA_DIR_ENV


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"IMHI data folder in MentaLLaMA's layout (default: ${DATA_DIR_ENV}, "
        "else a per-user cache dir)",
    )
