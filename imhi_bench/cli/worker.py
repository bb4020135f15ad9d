"""`imhi-bench worker`: evaluate queued submissions, each exactly once."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir, add_db_args, add_submissions_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker", help="evaluate queued submissions (claim, eval, record)",
        description=(
            "Claim the oldest PENDING submission (atomically: any number of workers may "
            "share a store), evaluate it with `imhi-bench eval`, and record its run: the "
            "submission becomes FINISHED with that run, or FAILED with the error.  A worker "
            "heartbeats while it runs; a RUNNING job whose heartbeat is older than "
            "--heartbeat-timeout goes back to PENDING and is resumed from the generations "
            "already cached.  Without --once or --drain the worker polls forever."
        ),
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_const", dest="mode", const="once",
                      help="run at most one job, then exit")
    mode.add_argument("--drain", action="store_const", dest="mode", const="drain",
                      help="run jobs until none is PENDING, then exit (RUNNING jobs of live "
                      "workers are theirs; stale ones are requeued and run)")
    mode.add_argument("--requeue", metavar="ID",
                      help="operators: put a FAILED submission back in the queue and exit")
    p.add_argument("--tasks", metavar="A,B",
                   help="tasks to run (default: the full set, imhi / imhi_completion); for "
                   "smoke tests")
    p.add_argument("--limit", type=int, metavar="N",
                   help="first N samples of each task (smoke tests only: such scores do not "
                   "compare to the paper's)")
    p.add_argument("--max-new-tokens", type=int, metavar="N",
                   help="tokens generated per sample (default 256; smoke tests)")
    p.add_argument("--heartbeat-timeout", type=float, default=600.0, metavar="S",
                   help="seconds without a heartbeat after which a RUNNING job is requeued "
                   "(default 600; keep it well above clock skew between worker machines)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="also claim submissions whose model needs its own code, and run it")
    p.add_argument("--batch-size", default="auto", metavar="auto|N",
                   help="generation batch size (default auto)")
    p.add_argument("--device", metavar="DEV", help="cuda, cuda:1, cpu... (default: cuda if "
                   "available)")
    p.add_argument("--poll", type=float, default=30.0, metavar="S",
                   help="seconds between looks at an empty queue (default 30)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the CI (default 1000)")
    add_submissions_dir(p)
    add_data_dir(p)
    add_db_args(p)
    p.set_defaults(func=run, mode="forever")


def run(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.queue.worker import WorkerOptions, work

    if args.requeue:
        from imhi_bench.queue.jobs import requeue
        from imhi_bench.store.engine import open_store

        requeue(open_store(args.db), args.requeue)
        print(f"requeued {args.requeue}: PENDING")
        print(NON_CLINICAL_NOTICE)
        return 0
    opts = WorkerOptions(
        db=args.db, submissions_dir=args.submissions_dir, mode=args.mode, tasks=args.tasks,
        limit=args.limit, max_new_tokens=args.max_new_tokens,
        heartbeat_timeout=args.heartbeat_timeout, trust_remote_code=args.trust_remote_code,
        batch_size=str(args.batch_size).strip().lower(), device=args.device,
        data_dir=args.data_dir, bootstrap=args.bootstrap, poll=args.poll,
        debug=bool(getattr(args, "debug", False)),  # the top-level --debug
    )
    # SIGTERM (docker stop, systemd) reaches `work` as Ctrl-C does (cli.main makes it a
    # KeyboardInterrupt): the job in hand is released to PENDING at once instead of waiting
    # out the heartbeat timeout, and the command exits 143.
    counts = work(opts, log=lambda msg: print(msg, flush=True))
    print(f"done: {counts['FINISHED']} finished, {counts['FAILED']} failed"
          + (f", {counts['LOST']} lost to another worker" if counts["LOST"] else ""))
    print(NON_CLINICAL_NOTICE)
    return 0
