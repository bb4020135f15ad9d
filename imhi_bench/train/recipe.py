"""Training recipes: what `imhi-bench train --config trainer/<recipe>.yaml` reads.

A recipe is a YAML mapping of the `Recipe` fields below; every key can be overridden on the
command line as `key=value` (values parse as YAML: `sets=DR,SAD`, `max_steps=300`,
`lora_targets=[q_proj,v_proj]`).  Defaults are the paper's where the paper states them
(MentaLLaMA, Yang et al., WWW 2024: effective batch 256 = 32 x 8 gradient accumulation, peak
learning rate 1e-5, 3% warm-up, max length 2048, AdamW, flash-attention, 4 x A100 80GB) and
ours, marked "(ours)", where it does not (epochs, scheduler, weight decay, precision, LoRA).

Like HELM's RunSpec, the recipe is frozen and every field has its docstring; `imhi-bench
train --help-recipe` prints them.
"""

from __future__ import annotations

import difflib
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from imhi_bench.core.errors import ImhiError

FORMATS = ("instruction", "completion")
FINETUNING = ("full", "lora", "qlora")
ARCHITECTURES = ("auto", "causal", "seq2seq")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BATCHING = ("auto", "padding_free", "group_by_length", "pad")
ATTENTION = ("auto", "flash_attention_2", "sdpa", "eager")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup", "constant")


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
    """`causal`, `seq2seq` (BART/T5), or `auto` (from the model's config)."""
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
    chat_template: str = "auto"
    """Wrap the prompt in the tokenizer's chat template: auto (when the tokenizer has one,
    as `imhi-bench eval` does), true or false.  Train and eval must agree."""
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
    """Where logs go besides the terminal: tensorboard (in output_dir/runs), none, ..."""
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
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Recipe))
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_CHOICES = {"format": FORMATS, "finetuning": FINETUNING, "architecture": ARCHITECTURES,
            "precision": PRECISIONS, "batching": BATCHING, "attn_implementation": ATTENTION,
            "lr_scheduler": SCHEDULERS}


def field_docs() -> dict[str, str]:
    """Field name -> its docstring, read from this module's source (one place for both)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(Recipe))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _nearest(key: str) -> str:
    close = difflib.get_close_matches(key, FIELD_NAMES, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(the type a field holds, whether it may be None) from its annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        return tuple, False
    return (args[0] if args else annotation), optional


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """A YAML value as the field's type; one line naming the key when it does not fit."""
    kind, optional = _base_type(annotation)
    if value is None:
        if optional:
            return None
        raise ImhiError(f"recipe key {name} cannot be empty: give a value")
    if kind is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            raise ImhiError(f"recipe key {name} must be a list, e.g. {name}=a,b")
        return tuple(str(v) for v in value)
    if kind is bool:
        word = str(value).strip().lower()
        if isinstance(value, bool) or word in _TRUE | _FALSE:
            return value if isinstance(value, bool) else word in _TRUE
        raise ImhiError(f"recipe key {name} must be true or false, not {value!r}")
    if kind in (int, float):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (kind is int and number != int(number)):
            what = "an integer" if kind is int else "a number"
            raise ImhiError(f"recipe key {name} must be {what}, not {value!r}")
        return kind(number)
    if isinstance(value, (dict, list)):
        raise ImhiError(f"recipe key {name} must be text, not {value!r}")
    return str(value)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` words -> {key: YAML value}."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ImhiError(f"override {item!r} is not key=value: write e.g. max_steps=300")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def make_recipe(values: dict[str, Any], *, where: str = "recipe") -> Recipe:
    """A checked Recipe from a mapping of its keys."""
    unknown = [k for k in values if k not in FIELD_NAMES]
    if unknown:
        k = unknown[0]
        raise ImhiError(f"unknown {where} key {k!r}{_nearest(k)}: see imhi-bench train "
                        "--help-recipe for the keys")
    hints = typing.get_type_hints(Recipe)
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    for k, choices in _CHOICES.items():
        if k in kwargs:
            kwargs[k] = str(kwargs[k]).lower() if k != "attn_implementation" else kwargs[k]
            if kwargs[k] not in choices:
                raise ImhiError(f"recipe key {k} is {values[k]!r}: use one of {', '.join(choices)}")
    if "chat_template" in kwargs:
        kwargs["chat_template"] = {"true": "true", "false": "false", "auto": "auto"}.get(
            str(kwargs["chat_template"]).lower(), "?")
        if kwargs["chat_template"] == "?":
            raise ImhiError("recipe key chat_template must be auto, true or false")
    recipe = Recipe(**kwargs)
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
    """The recipe file at `path` (optional) with `key=value` overrides applied."""
    import yaml

    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ImhiError(f"recipe {path} does not exist: pass one of trainer/*.yaml or your "
                            "copy of one")
        try:
            loaded = yaml.safe_load(p.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ImhiError(f"recipe {path} is not readable YAML ({first}): fix the file") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ImhiError(f"recipe {path} must be a mapping of keys to values")
        values.update(loaded)
    over = parse_overrides(overrides or [])
    unknown = [k for k in over if k not in FIELD_NAMES]
    if unknown:
        k = unknown[0]
        raise ImhiError(f"unknown override key {k!r}{_nearest(k)}: see imhi-bench train "
                        "--help-recipe for the keys")
    values.update(over)
    return make_recipe(values, where=f"recipe {path}" if path else "recipe")
