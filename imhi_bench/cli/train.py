"""`imhi-bench train --config RECIPE [key=value ...]` and `imhi-bench train merge`."""

from __future__ import annotations

import argparse

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.core.errors import ImhiError

EPILOG = """\
recipes: shipped with the package, one per paper model and the IMHI-general variants, by
name (imhi-bench train --list), or any YAML file; any key can be overridden:
    imhi-bench train --config mentallama-chat-7b model=PATH max_steps=300
keys: imhi-bench train --help-recipe
merge a LoRA adapter into its base: imhi-bench train merge --adapter DIR --out DIR [--base M]
several GPUs (the shipped accelerate configs: ddp, fsdp, zero3):
    accelerate launch --config_file "$(imhi-bench train --accelerate-config fsdp)" \\
    --num_processes 4 -m imhi_bench train --config mentallama-chat-7b
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="fine-tune a base model into a MentaLLaMA-style checkpoint",
        description=(
            "Train a model on the released IMHI train data with a recipe (TRL's SFT trainer for "
            "causal LMs, transformers' Seq2SeqTrainer for BART/T5, PEFT for LoRA/QLoRA).  The "
            "prompts are exactly those `imhi-bench eval` sends, the loss is on the response "
            "(with its end-of-sequence token), and the output folder (model or adapter, "
            "tokenizer, training card) goes to `imhi-bench eval` / `submit` as it is."
        ),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe keys to override (or `merge ...`, see below)")
    p.add_argument("--config", metavar="RECIPE",
                   help="a shipped recipe's name (e.g. mentalbart; see --list) or a recipe YAML")
    p.add_argument("--list", action="store_true",
                   help="list the shipped recipes and accelerate configs, and exit")
    p.add_argument("--accelerate-config", metavar="NAME", choices=("ddp", "fsdp", "zero3"),
                   help="print the path of a shipped accelerate config (ddp, fsdp, zero3) "
                   "for `accelerate launch --config_file`, and exit")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in output_dir from its last checkpoint (with its "
                   "recipe: only the keys of when to stop, log, evaluate and save may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier training run in output_dir, once the new run "
                   "has succeeded (it trains beside it until then)")
    p.add_argument("--help-recipe", action="store_true",
                   help="list every recipe key with its default and meaning, and exit")
    m = p.add_argument_group(
        "imhi-bench train merge --adapter DIR --out DIR [--base M]",
        "fold a LoRA adapter into its base model: a plain model folder (safetensors) that "
        "every backend serves without PEFT (--overwrite replaces an earlier merge at --out, "
        "never another folder; the new one is swapped in once complete)")
    m.add_argument("--adapter", metavar="DIR", help="the adapter folder")
    m.add_argument("--out", metavar="DIR", help="where the merged model goes")
    m.add_argument("--base", metavar="PATH_OR_ID",
                   help="base model (default: the one in adapter_config.json)")
    p.set_defaults(func=run)


def recipe_help() -> str:
    from imhi_bench.train.recipe import Recipe, field_docs

    defaults = Recipe()
    lines = []
    for name, doc in field_docs().items():
        value = getattr(defaults, name)
        shown = ",".join(value) if isinstance(value, tuple) else value
        lines.append(f"{name} (default {shown!r}):\n    {doc}")
    return "\n".join(lines)


def run_list() -> int:
    from imhi_bench.core.specfile import shipped_names
    from imhi_bench.scoring.report import table
    from imhi_bench.train.recipe import ACCELERATE_DIR, RECIPE_DIR, load_recipe

    rows = []
    for name in shipped_names(RECIPE_DIR):
        r = load_recipe(name)
        rows.append([name, r.model, r.finetuning, r.format, ",".join(r.sets)])
    print(table(["recipe", "model", "training", "format", "sets"], rows))
    print(f"\n(in {RECIPE_DIR}; `--config NAME` or a YAML file of your own)\n")
    print(table(["accelerate config", "file"],
                [[n, str(ACCELERATE_DIR / f"{n}.yaml")] for n in shipped_names(ACCELERATE_DIR)]))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.help_recipe:
        print(recipe_help())
        return 0
    if args.list:
        return run_list()
    if args.accelerate_config:
        from imhi_bench.train.recipe import ACCELERATE_DIR

        print(ACCELERATE_DIR / f"{args.accelerate_config}.yaml")
        return 0
    merging = args.overrides[:1] == ["merge"]
    if merging:
        if args.overrides[1:] or not (args.adapter and args.out) or args.config:
            raise ImhiError("usage: imhi-bench train merge --adapter DIR --out DIR [--base "
                            "MODEL] [--overwrite]")
        return run_merge(args)
    if args.adapter or args.out or args.base:
        raise ImhiError("--adapter, --out and --base are for `imhi-bench train merge`; a "
                        "training run takes its model and output_dir from the recipe")
    from imhi_bench.train.recipe import load_recipe
    from imhi_bench.train.trainer import run_training

    recipe = load_recipe(args.config, args.overrides)  # every check that needs no model
    # on first use, the release into the per-user dir (a recipe naming its own data_dir,
    # like an explicit --data-dir, is left as it is)
    from imhi_bench.benchmark.fetch import ensure_release

    ensure_release(recipe.data_dir, train=True)
    result = run_training(recipe, resume=args.resume, overwrite=args.overwrite)
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    print(f"trained {result.global_step} steps into {result.output_dir}")
    for key in ("train_loss", "eval_loss", "eval_weighted_f1"):
        if key in metrics:
            print(f"  {key}: {metrics[key]:.4f}")
    adapter = recipe.finetuning != "full"
    print("evaluate it with: imhi-bench eval --model "
          + (f"{recipe.model} --adapter {result.output_dir}" if adapter
             else str(result.output_dir)))
    print(NON_CLINICAL_NOTICE)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from imhi_bench.train.merge import merge_adapter

    dest = merge_adapter(args.adapter, args.out, base=args.base, overwrite=args.overwrite)
    print(f"merged {args.adapter} into {dest}")
    return 0
