"""Options shared by several sub-commands, defined once."""

from __future__ import annotations

import argparse

from imhi_bench.benchmark.data import DATA_DIR_ENV
from imhi_bench.scoring.quality.config import QualityConfig, quality_config
from imhi_bench.scoring.quality.table import (
    DEFAULT_BART_MODEL,
    DEFAULT_BERTSCORE_MODEL,
    QUALITY_METRICS,
)

FETCH_KINDS = ("test", "train")


def add_data_dir(parser: argparse.ArgumentParser, *, fetch: str | None = "test") -> None:
    """Add `--data-dir`, and mark the command for fetch on first use: `args.fetch_data` is
    `fetch` ("test": test/expert files; "train": the train/val files too; None: never, as
    for `data check`), which `cli.main` hands to `benchmark.fetch.ensure_release`."""
    if fetch is not None and fetch not in FETCH_KINDS:
        raise ValueError(f"fetch={fetch!r}: use one of {FETCH_KINDS} or None")
    default = f"${DATA_DIR_ENV}, else a per-user cache dir"
    if fetch is not None:
        default += ", which the first run fills from the pinned MentaLLaMA release"
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"IMHI data folder in MentaLLaMA's layout (default: {default})",
    )
    parser.set_defaults(fetch_data=fetch)


def check_store_url(args: argparse.Namespace) -> None:
    """A command's `precheck` (see `cli.main`): the --db URL's syntax, kind and driver,
    unless --no-db, before the first-use data fetch and any work; connects to nothing."""
    if getattr(args, "no_db", False):
        return
    from imhi_bench.store.engine import check_url

    check_url(args.db)


def add_db_args(parser: argparse.ArgumentParser, *, no_db: bool = False) -> None:
    """Add `--db URL` (and, with `no_db`, `--no-db`) to a sub-command's parser."""
    parser.add_argument(
        "--db", metavar="URL",
        help="results store: a SQLAlchemy URL or a SQLite file path (default: $IMHI_DB_URL, "
        "else imhi.sqlite in the per-user data dir)",
    )
    if no_db:
        parser.add_argument("--no-db", action="store_true",
                            help="do not record the results in the store")


def add_submissions_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--submissions-dir", metavar="DIR",
        help="where manifests (<id>.json), run folders (runs/<id>) and the generation cache "
        "live (default: $IMHI_SUBMISSIONS_DIR, else submissions/ in the current folder)",
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--bart-model, --bart-checkpoint, --bertscore-model, --bertscore-layers."""
    parser.add_argument("--bart-model", default=DEFAULT_BART_MODEL, metavar="PATH_OR_ID",
                        help=f"BART for BART-score (default {DEFAULT_BART_MODEL})")
    parser.add_argument("--bart-checkpoint", metavar="FILE",
                        help="state dict loaded into the BART model, e.g. BARTScore's ParaBank "
                        "bart_score.pth (loaded with weights_only=True)")
    parser.add_argument("--bertscore-model", metavar="PATH_OR_ID",
                        help=f"model for BERTScore (default bert-score's English default, "
                        f"{DEFAULT_BERTSCORE_MODEL})")
    parser.add_argument("--bertscore-layers", type=int, metavar="N",
                        help="BERTScore layer (default: bert-score's choice for known models, "
                        "else the last layer)")


def add_quality_args(parser: argparse.ArgumentParser) -> None:
    """--quality, the model options, and --labeler."""
    parser.add_argument("--quality", metavar="LIST",
                        help="explanation quality metrics against the gold response: any of "
                        f"{','.join(QUALITY_METRICS)} (or 'all')")
    add_model_args(parser)
    parser.add_argument("--labeler", metavar="DIR",
                        help="per-set classifier folders (from `imhi-bench labeler train` or "
                        "the paper's released classifiers): they read the labels of the sets "
                        "they cover (rules for the rest) and give the consistency check")


def quality_from_args(args: argparse.Namespace) -> QualityConfig | None:
    """The config the `add_quality_args` options describe, validated; None when neither
    --quality nor --labeler was given."""
    return quality_config(
        getattr(args, "quality", None),
        bart_model=getattr(args, "bart_model", None),
        bart_checkpoint=getattr(args, "bart_checkpoint", None),
        bertscore_model=getattr(args, "bertscore_model", None),
        bertscore_layers=getattr(args, "bertscore_layers", None),
        labeler_dir=getattr(args, "labeler", None),
    )
