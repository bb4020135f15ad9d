"""What `imhi-bench train` checks, and settles from the recipe and the machine, before any
data or model loads: the model folder and its weights, the model's architecture (from its
config alone), the libraries the recipe needs, its loggers, and the attention kernel,
batching and precision the run will use."""

from __future__ import annotations

from imhi_bench.core.errors import ImhiError
from imhi_bench.train.recipe import Recipe


def train_device() -> str:
    from imhi_bench.models.device import default_device

    return default_device()


def resolve_attention(recipe: Recipe, device: str) -> str:
    from imhi_bench.models.device import flash_attention_available

    if recipe.attn_implementation == "auto":
        return "flash_attention_2" if flash_attention_available() else "sdpa"
    if recipe.attn_implementation == "flash_attention_2" and not flash_attention_available():
        raise ImhiError("attn_implementation=flash_attention_2 needs flash-attn on a CUDA GPU: "
                        "pip install 'imhi-bench[flash]' there, or use attn_implementation=sdpa")
    return recipe.attn_implementation


def resolve_batching(recipe: Recipe, attention: str, causal: bool) -> str:
    if recipe.batching == "auto":
        return "padding_free" if causal and attention == "flash_attention_2" else "group_by_length"
    if recipe.batching == "padding_free":
        if not causal:
            raise ImhiError("batching=padding_free is for causal LMs: use group_by_length for "
                            "BART/T5")
        if attention != "flash_attention_2":
            raise ImhiError("batching=padding_free needs flash-attention (sequences share one "
                            "row): use batching=group_by_length, or install flash-attn on a GPU")
    return recipe.batching


def resolve_precision(recipe: Recipe, device: str) -> str:
    """bf16/fp16 train on a GPU; a CPU trains in fp32 (its half-precision kernels are slow
    and fp16 has no CPU scaler)."""
    if device != "cuda":
        return "fp32"
    if recipe.precision == "auto":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return recipe.precision


def check_recipe(recipe: Recipe, device: str) -> None:
    """What can be checked before data or models load."""
    from importlib.util import find_spec

    from imhi_bench.models.loading import check_safetensors
    from imhi_bench.models.options import local_model_dir

    local = local_model_dir(recipe.model, "model=")  # a path that is not a model folder
    if local is not None:
        check_safetensors(local, "model=")  # damaged weights, before anything is touched
    if recipe.finetuning == "qlora":
        if device != "cuda" or find_spec("bitsandbytes") is None:
            raise ImhiError("finetuning=qlora loads the base in 4 bits with bitsandbytes on a "
                            "CUDA GPU: use finetuning=lora (or full) here")
    if recipe.finetuning in ("lora", "qlora") and find_spec("peft") is None:
        raise ImhiError("finetuning=lora needs peft: pip install 'imhi-bench[train]'")
    check_report_to(recipe.report_to)


def check_report_to(report_to: tuple[str, ...]) -> None:
    """Every logger named is one transformers knows and is installed (transformers itself
    finds out only when the trainer is built, after the model loaded)."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    names = [r.strip().lower() for r in report_to if r.strip().lower() not in ("none", "all")]
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise ImhiError(f"report_to={name}: not a logger transformers knows; use none or "
                            f"some of {', '.join(sorted(INTEGRATION_TO_CALLBACK))}")
        if name not in get_available_reporting_integrations():
            hint = "'imhi-bench[train]'" if name == "tensorboard" else name
            raise ImhiError(f"report_to={name} needs {name} installed: pip install {hint}, "
                            "or set report_to=none")


def is_seq2seq(recipe: Recipe) -> bool:
    """From the model's config (read, no weights loaded); an `architecture` that is not the
    model's is refused (a causal head on BART would train a re-initialised decoder)."""
    from transformers import AutoConfig

    from imhi_bench.models.loading import explain_load_failure

    with explain_load_failure("model", recipe.model, "model="):
        cfg = AutoConfig.from_pretrained(recipe.model, trust_remote_code=recipe.trust_remote_code)
    seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
    if recipe.architecture not in ("auto", "seq2seq" if seq2seq else "causal"):
        kind = "an encoder-decoder (seq2seq)" if seq2seq else "a causal LM"
        raise ImhiError(f"architecture={recipe.architecture}: {recipe.model} is {kind} "
                        f"(model_type {getattr(cfg, 'model_type', '?')}): set "
                        "architecture=auto")
    return seq2seq
