"""`imhi-bench eval --model PATH_OR_ID`: generate on IMHI with lm-eval, score, write a run."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir, check_store_url


def register(sub: argparse._SubParsersAction) -> None:
    from imhi_bench.models.options import DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT, DTYPES
    from imhi_bench.models.registry import BACKEND_HELP, BACKENDS

    p = sub.add_parser(
        "eval",
        help="run a model on IMHI (lm-eval) and score it",
        description=(
            "Generate responses on IMHI with lm-evaluation-harness, read the label of each, "
            "and score every set (weighted F1 with a bootstrap CI, accuracy, macro F1, "
            "unparseable).  Writes a run folder with lm-eval's results, per-sample JSONL and "
            "imhi_results.json (the `score --json` schema).  Generations are cached, so the "
            "same command re-run after an interruption only generates what is missing.  "
            "Sets whose data files are absent (CLP was never released) are skipped "
            "from a group with a note; a task named explicitly must have its file."
        ),
    )
    p.add_argument("--model", required=True, metavar="PATH_OR_ID",
                   help="model folder or Hugging Face hub id (API backends: the served name)")
    p.add_argument("--backend", choices=BACKENDS, default="hf", help=BACKEND_HELP)
    p.add_argument("--adapter", metavar="PATH",
                   help="PEFT/LoRA adapter folder applied on top of --model "
                   "(as MentaLLaMA-33B-lora ships)")
    p.add_argument("--tasks", metavar="A,B",
                   help="comma list of groups (imhi, imhi_completion, imhi_expert, "
                   "imhi_unseen), tasks (imhi_dr, imhi_completion_sad, ...) or set names "
                   "(default: imhi; imhi_completion for hf-seq2seq)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="only the first N samples of each task (for testing: scores on a "
                   "subset do not compare to the paper's)")
    p.add_argument("--batch-size", default="auto", metavar="auto|N",
                   help="auto (default): batches sized by a token budget, longest prompts "
                   "first; or a fixed number of prompts")
    p.add_argument("--max-new-tokens", type=int, metavar="N",
                   help="tokens to generate per sample (default: the protocol's gold-max, the "
                   "longest released gold response of the set in the model's tokens, so no "
                   "answer of the paper's length is cut; a number makes another protocol)")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="weights dtype (default auto)")
    p.add_argument("--revision", metavar="REV", help="hub branch, tag or commit of the model")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat-template", dest="chat_template", action="store_true",
                      default=None, help="wrap prompts in the tokenizer's chat template "
                      "(another protocol than the paper's; default: the raw query as IMHI.py "
                      "sends it, unless the checkpoint's training card says it was trained "
                      "with its template)")
    chat.add_argument("--no-chat-template", dest="chat_template", action="store_false",
                      help="send the prompts as they are")
    p.add_argument("--system-prompt", metavar="TEXT", help="system message before each prompt")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for lm-eval, torch, the API and the bootstrap (default 0)")
    p.add_argument("--num-fewshot", type=int, default=0, metavar="K",
                   help="demonstrations before each prompt (default 0): query + gold response "
                   "from the set's train split, else val, else its expert examples, never a "
                   "test post; class-balanced, the same for a sample in every run")
    p.add_argument("--fewshot-seed", type=int, metavar="N",
                   help="seed of the demonstrations' draw (default 1234, lm-eval's "
                   "--fewshot_random_seed default, so lm_eval --num_fewshot K gives the same "
                   "prompts)")
    p.add_argument("--device", metavar="DEV", help="cuda, cuda:1, cpu... (default: cuda if "
                   "available)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own code from the hub (hf, vllm)")
    api = p.add_argument_group("API backends (openai-chat, openai-completions)")
    api.add_argument("--base-url", metavar="URL",
                     help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                     "(default: OpenAI)")
    api.add_argument("--api-key-env", metavar="VAR",
                     help="environment variable holding the API key (default OPENAI_API_KEY; "
                     "the key is never logged or stored)")
    api.add_argument("--num-concurrent", type=int, default=1, metavar="N",
                     help="requests in flight at once (default 1)")
    api.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT,
                     metavar="SECONDS",
                     help="how long one request waits for its answer before it is retried "
                     f"(default {DEFAULT_REQUEST_TIMEOUT:g})")
    api.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES, metavar="N",
                     help="retries with backoff on 429/5xx, connection errors and timeouts "
                     f"(default {DEFAULT_MAX_RETRIES}); Ctrl-C or SIGTERM stops a run at once, "
                     "keeping the answers so far cached")
    vl = p.add_argument_group("vLLM backend (GPU only)")
    vl.add_argument("--tensor-parallel-size", type=int, default=1, metavar="N")
    vl.add_argument("--data-parallel-size", type=int, default=1, metavar="N")
    vl.add_argument("--gpu-memory-utilization", type=float, default=0.9, metavar="F")
    vl.add_argument("--max-model-len", type=int, metavar="N")
    out = p.add_argument_group("output")
    out.add_argument("--output", metavar="DIR",
                     help="run folder (default runs/<name>, a new one per run); an earlier "
                     "run folder is replaced, unless a recorded run points to it")
    out.add_argument("--name",
                     help="the model's name on the leaderboard and the run folder's name "
                     "(default: on the leaderboard, the model's folder name or hub id, plus "
                     "a short hash of its path when another model in the store has that "
                     "name; the run folder runs/<model>-<backend>-<UTC time>)")
    out.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                     help="bootstrap resamples for the CI (default 1000; 0 disables)")
    out.add_argument("--cache-dir", metavar="DIR",
                     help="where generations are cached for resuming (default: "
                     "$IMHI_CACHE_DIR, else a per-user cache dir)")
    out.add_argument("--no-cache", action="store_true",
                     help="neither reuse nor record generations")
    add_data_dir(p, fetch="train")  # --num-fewshot draws demonstrations from train
    from imhi_bench.cli.options import add_db_args, add_quality_args

    add_quality_args(p.add_argument_group("explanation quality and labels"))
    add_db_args(p.add_argument_group("results store"), no_db=True)
    # a store URL that cannot work is refused before the data are fetched on first use; the
    # store itself is opened (and checked) before the model loads, by run_eval's preflight
    p.set_defaults(func=run, precheck=check_store_url)


def options(args: argparse.Namespace):
    from imhi_bench.cli.options import quality_from_args
    from imhi_bench.models.options import ModelOptions
    from imhi_bench.runs.evaluate import EvalOptions

    model = ModelOptions(
        model=args.model, backend=args.backend, adapter=args.adapter, revision=args.revision,
        dtype=args.dtype, batch_size=str(args.batch_size).strip().lower(), device=args.device,
        trust_remote_code=args.trust_remote_code, base_url=args.base_url,
        api_key_env=args.api_key_env, num_concurrent=args.num_concurrent,
        max_retries=args.max_retries, timeout=args.request_timeout,
        tensor_parallel_size=args.tensor_parallel_size,
        data_parallel_size=args.data_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
        seed=args.seed,
    )
    return EvalOptions(
        model=model, tasks=args.tasks, limit=args.limit, max_new_tokens=args.max_new_tokens,
        chat_template=args.chat_template, system_prompt=args.system_prompt, seed=args.seed,
        num_fewshot=args.num_fewshot, fewshot_seed=args.fewshot_seed, output=args.output,
        name=args.name, data_dir=args.data_dir, cache_dir=args.cache_dir,
        use_cache=not args.no_cache, bootstrap=args.bootstrap,
        quality=quality_from_args(args),  # validated before any model loads
    )


def after_run(run, args: argparse.Namespace) -> int | None:
    """Record the finished run in the results store (one transaction), unless --no-db.
    The submission worker records its runs itself, so this lives here, not in run_eval."""
    if args.no_db:
        return None
    from imhi_bench.store.record import record_scored

    prov = run.report["provenance"]
    model = args.adapter or args.model
    # A default name is made distinct from other weights' in the store (two folders both
    # named "llama" are two models); a name given with --name is taken as it is.
    return record_scored(args.db, run.report, run.samples, model={
        "name": args.name or model_label(model),
        "path": prov.get("adapter") or prov.get("model_resolved") or args.model,
        "revision": args.revision or "",
        "base_model": args.model if args.adapter else None,
        "precision": None if args.dtype == "auto" else args.dtype,
    }, unique_name=not args.name)


def model_label(model: str) -> str:
    """A leaderboard name for a model path or hub id: the folder name or the id (made
    distinct from other models' when recorded: `store.record.distinct_name`)."""
    from pathlib import Path

    path = Path(model).expanduser()
    return path.resolve().name if path.exists() else model


def check_store(args: argparse.Namespace) -> None:
    """Open (create or upgrade) the results store now, unless --no-db: a URL that is wrong,
    unreachable or a damaged file fails in seconds, before anything is generated, rather
    than after the whole run.  Runs as run_eval's preflight, once the cheap checks pass."""
    if args.no_db:
        return
    from imhi_bench.store.engine import check_store

    check_store(args.db)


def record_or_roll_back(result, args: argparse.Namespace) -> int | None:
    """`after_run`, after the run folder was written; if recording fails (or is
    interrupted), the run folder goes too, so there is never a run folder the store does not
    have, nor a store row without its folder."""
    import shutil

    from imhi_bench.core.errors import ImhiError

    try:
        return after_run(result, args)
    except BaseException as e:
        shutil.rmtree(result.run_dir, ignore_errors=True)
        if not isinstance(e, ImhiError):
            raise
        again = ("re-running the command generates nothing again: the generations are cached"
                 if result.report["provenance"].get("cache") else "re-run the command")
        raise ImhiError(f"{e}; the run folder {result.run_dir} was removed as well ({again})"
                        ) from None


def run(args: argparse.Namespace) -> int:
    from imhi_bench.runs.evaluate import run_eval
    from imhi_bench.runs.folder import RESULTS_FILE
    from imhi_bench.scoring.report import score_table

    result = run_eval(options(args), preflight=lambda: check_store(args))
    run_id = record_or_roll_back(result, args)
    print()
    cache = result.report["provenance"].get("cache")
    if cache:
        print(f"{result.generated} generated, {result.reused} reused from the cache.")
    print(f"Run folder: {result.run_dir}  ({RESULTS_FILE}, samples_<task>.jsonl, "
          "lm_eval_results.json)")
    if run_id is not None:
        print(f"Recorded as run {run_id} in the results store (see `imhi-bench leaderboard`).")
    # the table ends with the non-clinical notice: it stays the report's last line
    print()
    print(score_table(result.report))
    return 0
