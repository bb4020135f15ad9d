"""`imhi-bench submit --model PATH_OR_ID --name NAME`: check a checkpoint and queue it."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_db_args, add_submissions_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit", help="queue a checkpoint for evaluation on the leaderboard",
        description=(
            "Check a checkpoint (a local folder or a Hugging Face hub id) and queue it for "
            "`imhi-bench worker`.  Before anything is queued: config and tokenizer load "
            "(no weights, no remote code), weights are safetensors, the revision is pinned "
            "(a hub commit; a content hash for a folder), and the same model, revision, "
            "precision, backend and adapter is not queued already.  Writes the manifest "
            "<submissions dir>/<id>.json and a PENDING row in the results store.  See "
            "submissions/README.md."
        ),
    )
    p.add_argument("--model", required=True, metavar="PATH_OR_ID",
                   help="model folder or hub id; a PEFT adapter folder is taken as --adapter "
                   "(its base from --base-model or its adapter_config.json)")
    p.add_argument("--name", required=True,
                   help="leaderboard name: letters, digits and . _ + - (at most 100)")
    p.add_argument("--revision", metavar="REV",
                   help="hub branch, tag or commit (default main); pinned to its commit")
    # Checked by the command (one-line errors), not argparse `choices` (usage + error).
    p.add_argument("--precision", metavar="bf16|fp16|fp32",
                   help="weights dtype for the evaluation (default: the checkpoint's own "
                   "dtype, else bf16)")
    p.add_argument("--backend", metavar="hf|hf-seq2seq|vllm",
                   help="default: hf-seq2seq for encoder-decoders (MentalBART), else hf")
    p.add_argument("--adapter", metavar="PATH",
                   help="PEFT/LoRA adapter folder applied on top of --model")
    p.add_argument("--base-model", metavar="PATH_OR_ID",
                   help="an adapter's base when --model is the adapter; for a full model, "
                   "what it was fine-tuned from (shown on the leaderboard)")
    p.add_argument("--type", help="fine-tuned, base, API or discriminative")
    p.add_argument("--license", help="the model's license, e.g. mit or llama2")
    p.add_argument("--submitter", help="who submits (a name or contact)")
    p.add_argument("--training-data", metavar="DATA",
                   help="IMHI, IMHI-general or other (default: what the training card of a "
                   "folder `imhi-bench train` wrote says)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="accept pickle weights (.bin/.pt), which can run code when loaded")
    p.add_argument("--allow-remote-code", action="store_true",
                   help="operators: queue a model whose config needs its own code; only a "
                   "worker started with --trust-remote-code runs it")
    add_submissions_dir(p)
    add_db_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.queue.submission import (
        SubmitOptions,
        enqueue,
        precheck,
        prepare,
        submissions_dir,
    )
    from imhi_bench.store.engine import display_url, open_store, resolve_db_url

    opts = SubmitOptions(
        model=args.model, name=args.name, revision=args.revision, precision=args.precision,
        backend=args.backend, adapter=args.adapter, base_model=args.base_model,
        type=args.type, license=args.license, submitter=args.submitter,
        training_data=args.training_data, allow_pickle=args.allow_pickle,
        allow_remote_code=args.allow_remote_code,
    )
    precheck(opts)  # typos fail at once, before the store is created or anything loaded
    directory = submissions_dir(args.submissions_dir)
    url = resolve_db_url(args.db)
    factory = open_store(url)  # a bad --db fails before minutes of checking
    record = prepare(opts)
    queued = enqueue(record, factory, directory)
    print(f"queued {queued['id']} ({record['name']}): {queued['status']}")
    print(f"  model     {record['model']}")
    if record["adapter"]:
        print(f"  adapter   {record['adapter']}  ({record['adapter_revision'][:19]})")
    print(f"  revision  {record['revision']}")
    print(f"  precision {record['precision']}, backend {record['backend']}")
    if record["needs_remote_code"]:
        print(f"  needs remote code ({record['remote_code_reason']}): only a worker started "
              "with --trust-remote-code runs it")
    print(f"  manifest  {queued['manifest']}")
    print(f"  store     {display_url(url)}")
    print(f"Follow it with: imhi-bench status {queued['id']}")
    print(NON_CLINICAL_NOTICE)
    return 0
