"""`imhi-bench contamination --model PATH`: was a checkpoint trained on the test items?
`imhi-bench contamination clear RUN_ID`: an operator clears a flagged run."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir, add_db_args, check_store_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "contamination", help="check whether a checkpoint saw the test items",
        description=(
            "For each set with released held-out data (the val splits of DR, dreaddit, Irf, "
            "MultiWD, SAD), score the model's per-token log-likelihood of the gold response "
            "(teacher-forced, the prompt as `eval` sends it) on the test items and on as "
            "many seeded held-out items, plus Min-K% (K=20%), and test one-sided whether "
            "test items score higher (Mann-Whitney U).  Verdict per set and overall: "
            "clean, suspect (Bonferroni-adjusted p < 0.01) or contaminated (adjusted p < "
            "1e-4 and Cohen's d >= 0.8).  With --base, the same for the base model, and the "
            "verdict reads the per-item difference (model - base), which takes out what is "
            "intrinsic to the data.  `contamination clear RUN_ID` marks a flagged run "
            "cleared, so it ranks again."),
    )
    p.add_argument("--model", metavar="PATH_OR_ID", help="the checkpoint to check")
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter applied to --model")
    p.add_argument("--base", metavar="PATH_OR_ID",
                   help="its base model: the verdict reads model - base per item")
    p.add_argument("--backend", choices=("hf", "hf-seq2seq"), default="hf",
                   help="hf (causal, instruction data; default) or hf-seq2seq (completion)")
    p.add_argument("--sets", metavar="A,B", help="sets to check (default: every set with "
                   "held-out data)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="first N test items per set, and N held-out (quick checks)")
    p.add_argument("--seed", type=int, default=1234, help="held-out sample seed (1234)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE")
    p.add_argument("--dtype", default="auto", choices=("auto", "float16", "bfloat16",
                                                       "float32"))
    p.add_argument("--device", metavar="DEV", help="cuda, cpu... (default: cuda if available)")
    p.add_argument("--max-length", type=int, metavar="N",
                   help="tokens of prompt + response (default: the model's, at most 2048)")
    p.add_argument("--batch-tokens", type=int, metavar="N",
                   help="padded tokens per batch (default 4096 on CPU, 16384 on GPU)")
    p.add_argument("--trust-remote-code", action="store_true")
    add_data_dir(p, fetch="train")
    p.set_defaults(func=run, action=None)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    c = actions.add_parser("clear", help="operators: clear a flagged run (it ranks again)")
    c.add_argument("run_id", type=int, metavar="RUN_ID")
    c.add_argument("--note", default="", help="why it was cleared (kept with the run)")
    add_db_args(c)
    c.set_defaults(func=run_clear, precheck=check_store_url, fetch_data=None)


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import parse_set_list
    from imhi_bench.core.errors import ImhiError
    from imhi_bench.core.fileio import atomic_write_json, check_creatable
    from imhi_bench.models.device import check_device
    from imhi_bench.train.contamination import CheckOptions, format_report, run_check

    if not args.model:
        raise ImhiError("--model is required: the checkpoint folder or hub id to check")
    for name in ("limit", "max_length", "batch_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ImhiError(f"--{name.replace('_', '-')} {value}: give a positive number")
    if args.device:
        check_device(args.device)
    if args.json:
        check_creatable(args.json, "--json")
    sets = [s.name for s in parse_set_list(args.sets)] if args.sets else None
    opts = CheckOptions(
        model=args.model, adapter=args.adapter, base=args.base,
        seq2seq=args.backend == "hf-seq2seq", sets=sets, limit=args.limit, seed=args.seed,
        data_dir=args.data_dir, device=args.device, dtype=args.dtype,
        max_length=args.max_length, batch_tokens=args.batch_tokens,
        trust_remote_code=args.trust_remote_code)
    report = run_check(opts)
    if args.json:
        atomic_write_json(args.json, report)
    print(format_report(report))
    return 0


def run_clear(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.queue.contamination import clear
    from imhi_bench.store.engine import open_store

    check = clear(open_store(args.db), args.run_id, args.note)
    print(f"run {args.run_id}: {check['verdict']} cleared; it ranks again")
    print(NON_CLINICAL_NOTICE)
    return 0
