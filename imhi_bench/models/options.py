"""What `imhi-bench eval` was asked to run a model with, and every check of it that needs no
model loaded, so bad input fails before minutes of loading."""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.urls import mask_url
from imhi_bench.models.loading import HUB_ID, check_hub_model, check_safetensors
from imhi_bench.models.registry import API_BACKENDS, backend

DTYPES = ("auto", "float16", "bfloat16", "float32")
# What PEFT's save_pretrained writes (safetensors by default, .bin with safe_serialization off)
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
# API requests: how long one try waits for the answer, and how many times a failed try is
# repeated.  Generous for a long IMHI answer from a loaded server, yet a server that never
# answers fails a run in minutes, not the hour 600 s x 6 tries took.
DEFAULT_REQUEST_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 3
MAX_RETRIES_CAP = 20


@dataclass
class ModelOptions:
    """What `imhi-bench eval` was asked to run the model with."""

    model: str
    backend: str = "hf"
    adapter: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    batch_size: str = "auto"  # "auto" or a positive integer
    device: str | None = None  # default: cuda if available, else cpu
    trust_remote_code: bool = False
    # Load weights from safetensors only, never a pickle file beside them (the queue worker,
    # for a submission queued without --allow-pickle).
    safetensors_only: bool = False
    max_batch_tokens: int | None = None  # hf: token budget of an auto batch
    # API backends
    base_url: str | None = None
    api_key_env: str | None = None
    num_concurrent: int = 1
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_REQUEST_TIMEOUT  # --request-timeout
    # vLLM
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    seed: int = 0


def is_api(opts: ModelOptions) -> bool:
    return backend(opts.backend).api


def check_batch_size(value: str) -> None:
    """--batch-size: auto or a positive integer (eval and the worker take it)."""
    if value != "auto" and not (str(value).isdigit() and int(value) > 0):
        raise ImhiError(f"--batch-size {value!r}: use auto or a positive integer")


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def _looks_like_path(text: str) -> bool:
    """Not shaped like a hub id ("name" or "org/name"): "./m", "/abs/m", "~/m", "a/b/c"."""
    return not HUB_ID.match(text)


def _named(option: str, value: str) -> str:
    """How a message names a value: `--model X`, or `model=X` for a recipe key."""
    return f"{option}{value}" if option.endswith("=") else f"{option} {value}"


def local_model_dir(model: str, option: str = "--model") -> Path | None:
    """The model folder if `model` names one on disk, None if it is a hub id; an error if it
    looks like a path that is not a model folder.  `option` is what chose it (`--model`,
    `--base`, `model=`), for the message."""
    p = Path(model).expanduser()
    named = _named(option, model)
    if p.exists():
        if not p.is_dir():
            raise ImhiError(f"{named}: is a file; pass the model folder (the one "
                            "holding config.json and the weights)")
        if not (p / "config.json").is_file():
            if (p / "adapter_config.json").is_file():
                base = (adapter_config(p) or {}).get("base_model_name_or_path")
                raise ImhiError(
                    f"{named} is a PEFT adapter, not a model: pass its base model "
                    f"with --model{' ' + base if base else ' BASE'} and this folder with "
                    f"--adapter {model}"
                )
            raise ImhiError(
                f"{named} has no config.json, so it is not a Hugging Face model "
                "folder: pass the folder save_pretrained wrote (config.json + weights)"
            )
        return p.resolve()
    if _looks_like_path(model):
        raise ImhiError(f"{named}: no such folder; pass a local model folder or a "
                        "Hugging Face hub id such as klyang/MentaLLaMA-chat-7B")
    return None


def adapter_config(adapter_dir: Path) -> dict | None:
    """A PEFT adapter folder's adapter_config.json, or None when it is missing or broken."""
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def check_adapter(adapter: str) -> Path:
    p = Path(adapter).expanduser()
    if not p.is_dir():
        raise ImhiError(f"--adapter {adapter}: no such folder; pass the PEFT adapter folder "
                        "(the one holding adapter_config.json)")
    if not (p / "adapter_config.json").is_file():
        hint = (" (it holds config.json: it is a full model, pass it with --model)"
                if (p / "config.json").is_file() else "")
        raise ImhiError(f"--adapter {adapter} has no adapter_config.json, so it is not a PEFT "
                        f"adapter folder{hint}")
    if adapter_config(p) is None:  # PEFT would fail on it later, after the base loaded
        raise ImhiError(f"--adapter {adapter}: its adapter_config.json is not a JSON object "
                        "(unreadable or damaged): re-save the adapter with PEFT's "
                        "save_pretrained")
    # Without weights PEFT takes the folder for a hub id and fails with "Repo id must be in
    # the form 'repo_name'...", which says nothing about the folder.
    if not any((p / name).is_file() for name in ADAPTER_WEIGHTS):
        raise ImhiError(f"--adapter {adapter} has no {' or '.join(ADAPTER_WEIGHTS)}: pass the "
                        "folder PEFT's save_pretrained wrote (adapter_config.json + weights)")
    check_safetensors(p, "--adapter")
    return p.resolve()


def check_reachable(base_url: str, timeout: float = 10.0) -> None:
    """Fail fast, before any request is retried, when nothing listens at `base_url`."""
    shown = mask_url(base_url)
    try:
        u = urlparse(base_url)
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        u, port = None, 0
    if u is None or u.scheme not in ("http", "https") or not u.hostname:
        raise ImhiError(f"--base-url {shown!r} is not an http(s) URL, e.g. "
                        "http://127.0.0.1:8000/v1")
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ImhiError(f"cannot reach the API at {shown} ({reason}): check --base-url and "
                        "that the server is running") from None


def check_request_limits(timeout: float, max_retries: int, *, where: str = "") -> None:
    """--request-timeout: positive seconds; --max-retries: 0..MAX_RETRIES_CAP (eval, and
    the API baselines' request_timeout / max_retries keys)."""
    t, r = ("request_timeout", "max_retries") if where else ("--request-timeout",
                                                             "--max-retries")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ImhiError(f"{where}{t} {timeout!r}: give the seconds one API request may wait "
                        f"for its answer, a positive number (default {DEFAULT_REQUEST_TIMEOUT:g})")
    if not (isinstance(max_retries, int) and 0 <= max_retries <= MAX_RETRIES_CAP):
        raise ImhiError(f"{where}{r} {max_retries!r}: give how often a failed API request is "
                        f"retried, 0 to {MAX_RETRIES_CAP} (default {DEFAULT_MAX_RETRIES})")


def api_key(opts: ModelOptions) -> str:
    """The API key from the named environment variable (never logged or stored)."""
    name = opts.api_key_env or DEFAULT_API_KEY_ENV
    key = os.environ.get(name)
    if key:
        return key
    if opts.api_key_env or not opts.base_url:
        raise ImhiError(f"environment variable {name} is not set: export {name}=<your API key> "
                        "(or name another variable with --api-key-env)")
    return "EMPTY"  # a self-hosted server that takes no key; the client needs a value


def check(opts: ModelOptions) -> None:
    """Every check that needs no model loaded; raises ImhiError on the first problem."""
    backend(opts.backend)  # an unknown name fails here
    if opts.dtype not in DTYPES:
        raise ImhiError(f"unknown --dtype {opts.dtype!r}: use one of {', '.join(DTYPES)}")
    check_batch_size(opts.batch_size)
    if is_api(opts):
        if opts.adapter:
            raise ImhiError("--adapter needs a local backend (hf, hf-seq2seq, vllm): an API "
                            "serves a model as it is")
        if opts.num_concurrent < 1:
            raise ImhiError("--num-concurrent must be at least 1")
        check_request_limits(opts.timeout, opts.max_retries)
        api_key(opts)
        if opts.base_url:
            check_reachable(opts.base_url)
        return
    if opts.base_url:
        raise ImhiError(f"--base-url is for the API backends ({', '.join(API_BACKENDS)}), "
                        f"not {opts.backend}")
    local = local_model_dir(opts.model)
    if opts.adapter:
        check_adapter(opts.adapter)
    if opts.backend == "vllm":
        if find_spec("vllm") is None:
            raise ImhiError("the vllm backend needs vLLM, which runs on CUDA GPUs only: on a GPU "
                            "machine, pip install -c constraints/gpu.txt '.[vllm,train]' (README: "
                            "GPU install), or use --backend hf")
        if not 0 < opts.gpu_memory_utilization <= 1:
            raise ImhiError("--gpu-memory-utilization must be in (0, 1]")
    if opts.adapter and find_spec("peft") is None and opts.backend != "vllm":
        raise ImhiError("--adapter needs peft: pip install 'imhi-bench[train]'")
    if opts.device and opts.backend != "vllm":  # vLLM places the model itself
        from imhi_bench.models.device import check_device

        check_device(opts.device)
    if local is not None:  # last: reads the weight files' headers
        check_safetensors(local, "--model")


def check_download(opts: ModelOptions) -> None:
    """A hub id must be downloadable (or cached when the hub is offline): asks the hub, so
    it is kept out of `check`, which looks at the disk only."""
    if not is_api(opts) and local_model_dir(opts.model) is None:
        check_hub_model(opts.model, "--model", revision=opts.revision)
