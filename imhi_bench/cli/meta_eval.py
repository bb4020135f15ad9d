"""`imhi-bench meta-eval`: correlation of the quality metrics with human ratings."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir, add_model_args
from imhi_bench.scoring.quality.table import (
    DEFAULT_BATCH_SIZE,
    QUALITY_METRICS,
    parse_quality_metrics,
)

ALL = ",".join(QUALITY_METRICS)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "meta-eval",
        help="correlate BART-score/BERTScore/ROUGE-L with the paper's human ratings",
        description=(
            "Pearson, Spearman and Kendall correlation of each explanation-quality metric with "
            "each human aspect (fluency, completeness, reliability, overall; mean of the three "
            "annotators) on human_evaluation/DR_annotation/*.csv.  Reference-free: each "
            "explanation is scored given its post (BART-score source = post, target = "
            "explanation).  Prints the pooled table; the JSON also has each file."
        ),
    )
    add_data_dir(p)
    p.add_argument("--metrics", default=ALL, metavar="LIST",
                   help=f"any of {ALL} (default all)")
    add_model_args(p)
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="BART-score batch size: about N average-length pairs per batch "
                        f"(default {DEFAULT_BATCH_SIZE})")
    p.add_argument("--json", metavar="OUT", help="also write the results JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from imhi_bench.core.errors import ImhiError
    from imhi_bench.core.fileio import atomic_write_json
    from imhi_bench.scoring.meta_eval import format_meta_eval, meta_evaluate

    metrics = parse_quality_metrics(args.metrics)
    if not metrics:
        raise ImhiError(f"--metrics is empty: give any of {ALL}")
    if args.bart_checkpoint and "bart" not in metrics:
        raise ImhiError("--bart-checkpoint is for BART-score: add bart to --metrics")
    if args.batch_size is not None and args.batch_size < 1:
        raise ImhiError(f"--batch-size must be at least 1, got {args.batch_size}")
    result = meta_evaluate(
        metrics, args.data_dir, bart_model=args.bart_model, bart_checkpoint=args.bart_checkpoint,
        bertscore_model=args.bertscore_model, bertscore_layers=args.bertscore_layers,
        batch_size=args.batch_size,
    )
    if args.json:
        atomic_write_json(args.json, result)
    print(format_meta_eval(result))
    if args.json:
        print(f"\nwrote {args.json}")
    return 0
