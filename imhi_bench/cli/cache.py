"""`imhi-bench cache info|prune`: what the generation cache holds, and freeing it."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR",
                   help="the cache folder eval used (default: $IMHI_CACHE_DIR, else a per-user "
                   "cache dir)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="show or prune the generation cache eval resumes from",
        description="eval commits every generation to one SQLite file so that a re-run "
        "generates only what is missing.  It grows with every model evaluated: `info` shows "
        "what it holds, `prune` deletes generations and compacts the file.",
    )
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="the cache file, its size, generations per model",
                              description="List the cached models (newest first) with the "
                              "number of generations each and when the newest was made.")
    _add_dir(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=run_info)
    prune = actions.add_parser(
        "prune", help="delete cached generations and compact the file",
        description="Delete the generations selected by exactly one of the options, in one "
        "transaction, then compact the file.  A later eval of a pruned model generates "
        "again.",
    )
    _add_dir(prune)
    which = prune.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", type=float, metavar="DAYS",
                       help="generations made more than DAYS days ago")
    which.add_argument("--model", metavar="MODEL",
                       help="one model's generations: its path or hub id as given to eval, or "
                       "a key prefix shown by `cache info`")
    which.add_argument("--all", action="store_true", help="every generation")
    prune.set_defaults(func=run_prune)


def _cache_dir(args: argparse.Namespace) -> str:
    from pathlib import Path

    from imhi_bench.core.errors import ImhiError
    from imhi_bench.models.generation_cache import default_cache_dir

    folder = args.cache_dir or default_cache_dir()
    # A file there would read as "no cached generations": say what is wrong instead.
    if Path(folder).expanduser().exists() and not Path(folder).expanduser().is_dir():
        raise ImhiError(f"--cache-dir {folder} is a file, not a folder: pass the cache folder "
                        "eval used (default: $IMHI_CACHE_DIR, else the per-user cache dir)")
    return str(folder)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _model_name(entry: dict) -> str:
    ident = entry["identity"]
    if not ident:
        return f"(unnamed, key {entry['key'][:12]})"
    extra = [f"{k} {ident[k]}" for k in ("revision", "adapter", "dtype") if ident.get(k)]
    return f"{ident.get('model')} [{ident.get('backend')}]" + (
        f" ({', '.join(extra)})" if extra else "")


def run_info(args: argparse.Namespace) -> int:
    from imhi_bench.models.generation_cache import summary

    out = summary(_cache_dir(args))
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if not out["models"]:
        print(f"No cached generations in {out['path']}.")
        print(NON_CLINICAL_NOTICE)
        return 0
    print(f"{out['path']}: {out['generations']} generations of {len(out['models'])} "
          f"model(s), {_mib(out['bytes'])}")
    for entry in out["models"]:
        newest = dt.datetime.fromtimestamp(entry["newest"], dt.timezone.utc)
        print(f"  {entry['generations']:>7}  newest {newest:%Y-%m-%d %H:%M}Z  "
              f"key {entry['key'][:12]}  {_model_name(entry)}")
    print(NON_CLINICAL_NOTICE)
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from imhi_bench.models.generation_cache import prune

    out = prune(_cache_dir(args), older_than_days=args.older_than, model=args.model,
                everything=args.all)
    print(f"{out['path']}: removed {out['removed']} generations, freed "
          f"{_mib(out['bytes_freed'])}.")
    if not out["compacted"]:
        print("The file was not compacted (an eval is using it): run prune again later to "
              "give the space back.")
    print(NON_CLINICAL_NOTICE)
    return 0
