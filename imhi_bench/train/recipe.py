"""Training recipes: what `imhi-bench train --config RECIPE` reads (a recipe shipped in
`recipes/`, by name, or a YAML file).

A recipe is a YAML mapping of the `Recipe` fields below; every key can be overridden on the
command line as `key=value` (values parse as YAML: `sets=DR,SAD`, `max_steps=300`,
`lora_targets=[q_proj,v_proj]`).  Defaults are the paper's where the paper states them
(MentaLLaMA, Yang et al., WWW 2024: effective batch 256 = 32 x 8 gradient accumulation, i.e.
8 per device x 4 GPUs a step, times 8 accumulation steps; peak learning rate 1e-5, 3%
warm-up, max length 2048, AdamW, flash-attention, 4 x A100 80GB) and ours, marked "(ours)",
where it does not (epochs, scheduler, weight decay, precision, LoRA).

Like HELM's RunSpec, the recipe is frozen and every field has its docstring; `imhi-bench
train --help-recipe` prints them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imhi_bench.core import specfile
from imhi_bench.core.errors import ImhiError

# The recipes and accelerate configs shipped in the package (`train --list` shows them).
RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
ACCELERATE_DIR = RECIPE_DIR / "accelerate"
FORMATS = ("instruction", "completion")
FINETUNING = ("full", "lora", "qlora")
ARCHITECTURES = ("auto", "causal", "seq2seq")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BATCHING = ("auto", "padding_free", "group_by_length", "pad")
ATTENTION = ("auto", "flash_attention_2", "sdpa", "eager")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup", "constant")
CHAT_TEMPLATE = ("auto", "true", "false")


@dataclass(frozen=True)
class Recipe:
    model: str = ""
    """Base model: a local folder or a Hugging Face hub id (required)."""
    output_dir: str = ""
    """Where checkpoints, logs and the final model go (required).  Must be empty or absent
    unless the run is resumed (`--resume`) or replaced (`--overwrite`)."""
    sets: tuple[str, ...] = ("imhi",)
    """Training sets: set names, `imhi` (every set with released train data) or
    `imhi_general` (the paper's generalisation study: without dreaddit, T-SID, CAMS, Irf)."""
    format: str = "instruction"
    """`instruction` (query -> gpt-3.5-turbo response; the MentaLLaMA models) or
    `completion` (post + question -> response; MentalBART and MentalT5)."""
    architecture: str = "auto"
    """`causal`, `seq2seq` (BART/T5), or `auto` (from the model's config; one that is not
    the model's is refused)."""
    finetuning: str = "full"
    """`full`, `lora` or `qlora` (4-bit base through bitsandbytes, CUDA only)."""
    lora_r: int = 16
    """LoRA rank (ours: the paper does not publish MentaLLaMA-33B-lora's settings)."""
    lora_alpha: int = 32
    """LoRA alpha (ours)."""
    lora_dropout: float = 0.05
    """LoRA dropout (ours)."""
    lora_targets: tuple[str, ...] = ("all-linear",)
    """Modules LoRA adapts: `all-linear` or module names such as q_proj, v_proj (ours)."""
    epochs: float = 3.0
    """Passes over the training data (ours; ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps to train for; -1: `epochs` decide."""
    learning_rate: float = 1e-5
    """Peak learning rate (paper: 1e-5), AdamW."""
    warmup_ratio: float = 0.03
    """Share of the steps spent warming up (paper: 3%)."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule after warm-up (ours): cosine, linear, constant_with_warmup."""
    weight_decay: float = 0.0
    """AdamW weight decay (ours)."""
    per_device_batch_size: int = 8
    """Samples per device per step; with 4 GPUs and 8 accumulation steps, 8 gives the
    paper's effective batch of 256."""
    gradient_accumulation_steps: int = 8
    """Steps accumulated per optimizer update (paper: 8)."""
    max_length: int = 2048
    """Most tokens of prompt + response (paper: 2048).  A longer sample has its post cut,
    never its response."""
    precision: str = "bf16"
    """Training precision (ours): bf16, fp16, fp32, or auto (bf16 on a GPU that has it,
    else fp32).  On CPU bf16/fp16 fall back to fp32."""
    attn_implementation: str = "auto"
    """Attention kernel: auto (flash_attention_2 when flash-attn is installed and a GPU is
    there, else sdpa), or one named."""
    batching: str = "auto"
    """`padding_free` (flattened batches, needs flash-attention), `group_by_length`
    (batches of similar length), `pad` (plain), or auto (padding_free with
    flash-attention, else group_by_length)."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass to save memory."""
    chat_template: str = "false"
    """Wrap the prompt in the tokenizer's chat template: false (the raw query, as
    `imhi-bench eval` and the paper's IMHI.py send it), true, or auto (when the tokenizer
    has one).  The training card records what was used; eval of the checkpoint follows it."""
    system_prompt: str | None = None
    """System message before each prompt (as `imhi-bench eval --system-prompt`)."""
    seed: int = 42
    """Seed for data order, initialisation and dropout (ours)."""
    max_train: int | None = None
    """Use at most this many training rows (a seeded sample; None: all)."""
    max_val: int | None = 512
    """Validation rows for the loss during training (a seeded sample; None: all)."""
    eval_steps: int = 200
    """Validation loss every N optimizer steps (0: never)."""
    f1_steps: int = 0
    """Weighted F1 through the scoring pipeline on a val subset every N steps (0: never):
    the model generates, labels are read and scored as `imhi-bench eval` does."""
    f1_samples: int = 64
    """Val rows the periodic weighted F1 generates for."""
    f1_max_new_tokens: int = 256
    """Tokens generated per val row for the periodic weighted F1."""
    save_steps: int = 500
    """A resumable checkpoint (optimizer and scheduler included) every N steps."""
    save_total_limit: int = 2
    """Checkpoints kept (the newest)."""
    logging_steps: int = 10
    """Loss and learning rate logged every N steps (terminal and TensorBoard)."""
    report_to: tuple[str, ...] = ("tensorboard",)
    """Where logs go besides the terminal: tensorboard (in output_dir/runs), none, or any
    logger transformers knows that is installed (checked before anything loads)."""
    trust_remote_code: bool = False
    """Allow the model's own code from the hub."""
    data_dir: str | None = None
    """IMHI data folder (default: $IMHI_DATA_DIR, else the per-user cache dir)."""

    @property
    def training_data(self) -> str:
        """What the store calls this data: IMHI, IMHI-general, or other."""
        if self.sets == ("imhi",):
            return "IMHI"
        if self.sets == ("imhi_general",):
            return "IMHI-general"
        return "other"

    def to_dict(self) -> dict:
        return specfile.to_dict(self)


FIELD_NAMES: tuple[str, ...] = specfile.field_names(Recipe)
_CHOICES = {"format": FORMATS, "finetuning": FINETUNING, "architecture": ARCHITECTURES,
            "precision": PRECISIONS, "batching": BATCHING, "attn_implementation": ATTENTION,
            "lr_scheduler": SCHEDULERS, "chat_template": CHAT_TEMPLATE}
_HELP = "see imhi-bench train --help-recipe for the keys"


def field_docs() -> dict[str, str]:
    """Field name -> its docstring."""
    return specfile.field_docs(Recipe)


def make_recipe(values: dict[str, Any], *, where: str = "recipe") -> Recipe:
    """A checked Recipe from a mapping of its keys."""
    recipe = specfile.build(Recipe, values, what="recipe", where=where, help_hint=_HELP,
                            choices=_CHOICES)
    _check(recipe)
    return recipe


def _check(r: Recipe) -> None:
    if not r.model:
        raise ImhiError("the recipe names no model: set model=PATH_OR_HUB_ID")
    if not r.output_dir:
        raise ImhiError("the recipe names no output_dir: set output_dir=DIR")
    positive = ("lora_r", "lora_alpha", "per_device_batch_size", "gradient_accumulation_steps",
                "max_length", "f1_samples", "f1_max_new_tokens", "save_steps", "logging_steps",
                "save_total_limit")
    for name in positive:
        if getattr(r, name) < 1:
            raise ImhiError(f"recipe key {name} must be at least 1, not {getattr(r, name)}")
    for name in ("eval_steps", "f1_steps", "weight_decay", "lora_dropout"):
        if getattr(r, name) < 0:
            raise ImhiError(f"recipe key {name} must be 0 or more, not {getattr(r, name)}")
    if r.learning_rate <= 0:
        raise ImhiError(f"recipe key learning_rate must be positive, not {r.learning_rate}")
    if not 0 <= r.warmup_ratio < 1:
        raise ImhiError(f"recipe key warmup_ratio must be in [0, 1), not {r.warmup_ratio}")
    if r.max_steps <= 0 and r.epochs <= 0:
        raise ImhiError("set max_steps (> 0) or epochs (> 0): nothing would be trained")
    for name in ("max_train", "max_val"):
        if getattr(r, name) is not None and getattr(r, name) < 1:
            raise ImhiError(f"recipe key {name} must be at least 1 (or null for all)")


def load_recipe(path: str | os.PathLike | None, overrides: list[str] | None = None) -> Recipe:
    """The recipe at `path` (optional: a shipped recipe's name or a YAML file) with
    `key=value` overrides applied."""
    recipe = specfile.load(Recipe, path, overrides, what="recipe",
                           hint="a recipe name (imhi-bench train --list) or a YAML file",
                           help_hint=_HELP, choices=_CHOICES, shipped=RECIPE_DIR)
    _check(recipe)
    return recipe
