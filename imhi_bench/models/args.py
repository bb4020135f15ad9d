"""The lm-eval constructor arguments of each backend (the registry's `build_args`).

Cheap to call: nothing is loaded, only decided (device, attention kernel, LoRA rank)."""

from __future__ import annotations

from pathlib import Path

from imhi_bench.models.device import default_device, flash_attention_available
from imhi_bench.models.options import ModelOptions, adapter_config


def _local(opts: ModelOptions) -> dict:
    """What every local-weights backend takes."""
    args: dict = {
        "pretrained": opts.model,
        "dtype": opts.dtype,
        "batch_size": opts.batch_size if opts.batch_size == "auto" else int(opts.batch_size),
        "trust_remote_code": opts.trust_remote_code,
    }
    if opts.revision:
        args["revision"] = opts.revision
    return args


def hf_args(opts: ModelOptions) -> dict:
    """`imhi_bench.models.hf.ImhiHFLM` (hf and hf-seq2seq)."""
    args = _local(opts)
    args["backend"] = "seq2seq" if opts.backend == "hf-seq2seq" else "causal"
    args["device"] = opts.device or default_device()
    if opts.adapter:
        args["peft"] = opts.adapter
    if opts.max_batch_tokens:
        args["max_batch_tokens"] = opts.max_batch_tokens
    if opts.safetensors_only:  # no fallback to a .bin: without safetensors, loading fails
        args["use_safetensors"] = True
    if flash_attention_available() and opts.dtype in ("float16", "bfloat16", "auto"):
        args["attn_implementation"] = "flash_attention_2"
    return args


def vllm_args(opts: ModelOptions) -> dict:
    """lm-eval's own `vllm` model (GPU only); an adapter is served as a LoRA of its rank."""
    args = _local(opts)
    args.update(tensor_parallel_size=opts.tensor_parallel_size,
                data_parallel_size=opts.data_parallel_size,
                gpu_memory_utilization=opts.gpu_memory_utilization, seed=opts.seed)
    if opts.max_model_len:
        args["max_model_len"] = opts.max_model_len
    if opts.safetensors_only:
        args["load_format"] = "safetensors"
    if opts.adapter:
        folder = Path(opts.adapter).expanduser()
        args["lora_local_path"] = str(folder.resolve())
        rank = (adapter_config(folder) or {}).get("r")
        if isinstance(rank, int) and rank:
            args["max_lora_rank"] = rank
    return args


def api_args(opts: ModelOptions) -> dict:
    """`imhi_bench.models.openai` (both API backends)."""
    return {
        "model": opts.model,
        "base_url": opts.base_url,
        "api_key_env": opts.api_key_env,  # None: OPENAI_API_KEY, optional for --base-url
        "num_concurrent": opts.num_concurrent,
        "max_retries": opts.max_retries,
        "timeout": opts.timeout,
        "seed": opts.seed,
    }
