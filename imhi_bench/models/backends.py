"""Model backends of `imhi-bench eval`: checking what the user passed, and the lm-eval model
name + arguments each backend is built from.

Backends and the lm-eval model class behind each:

    hf                  imhi-hf (imhi_bench.models.hf, lm-eval's HFLM with a faster generate loop)
    hf-seq2seq          imhi-hf with backend=seq2seq (MentalBART / MentalT5 style)
    vllm                lm-eval's vllm (GPU only; `pip install imhi-bench[vllm]`)
    openai-chat         imhi-openai-chat (imhi_bench.models.openai, the `openai` client)
    openai-completions  imhi-openai-completions

Everything here is cheap (no model is loaded) so bad input fails before minutes of loading.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

from imhi_bench.core.errors import ImhiError

BACKENDS: tuple[str, ...] = ("hf", "hf-seq2seq", "vllm", "openai-chat", "openai-completions")
API_BACKENDS = ("openai-chat", "openai-completions")
LOCAL_BACKENDS = ("hf", "hf-seq2seq", "vllm")
DTYPES = ("auto", "float16", "bfloat16", "float32")
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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
    max_batch_tokens: int | None = None  # hf: token budget of an auto batch
    # API backends
    base_url: str | None = None
    api_key_env: str | None = None
    num_concurrent: int = 1
    max_retries: int = 5
    timeout: float = 600.0
    # vLLM
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    seed: int = 0


def is_api(opts: ModelOptions) -> bool:
    return opts.backend in API_BACKENDS


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def _looks_like_path(text: str) -> bool:
    """Not shaped like a hub id ("name" or "org/name"): "./m", "/abs/m", "~/m", "a/b/c"."""
    return not _HUB_ID.match(text)


def local_model_dir(model: str) -> Path | None:
    """The model folder if `model` names one on disk, None if it is a hub id; an error if it
    looks like a path that is not a model folder."""
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ImhiError(f"--model {model}: is a file; pass the model folder (the one "
                            "holding config.json and the weights)")
        if not (p / "config.json").is_file():
            if (p / "adapter_config.json").is_file():
                base = _adapter_base(p)
                raise ImhiError(
                    f"--model {model} is a PEFT adapter, not a model: pass its base model "
                    f"with --model{' ' + base if base else ' BASE'} and this folder with "
                    f"--adapter {model}"
                )
            raise ImhiError(
                f"--model {model} has no config.json, so it is not a Hugging Face model "
                "folder: pass the folder save_pretrained wrote (config.json + weights)"
            )
        return p.resolve()
    if _looks_like_path(model):
        raise ImhiError(f"--model {model}: no such folder; pass a local model folder or a "
                        "Hugging Face hub id such as klyang/MentaLLaMA-chat-7B")
    return None


def _adapter_base(adapter_dir: Path) -> str | None:
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return cfg.get("base_model_name_or_path") or None


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
    return p.resolve()


def check_reachable(base_url: str, timeout: float = 10.0) -> None:
    """Fail fast, before any request is retried, when nothing listens at `base_url`."""
    u = urlparse(base_url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ImhiError(f"--base-url {base_url!r} is not an http(s) URL, e.g. "
                        "http://127.0.0.1:8000/v1")
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ImhiError(f"cannot reach the API at {base_url} ({reason}): check --base-url and "
                        "that the server is running") from None


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
    if opts.backend not in BACKENDS:
        raise ImhiError(f"unknown backend {opts.backend!r}: use one of {', '.join(BACKENDS)}")
    if opts.dtype not in DTYPES:
        raise ImhiError(f"unknown --dtype {opts.dtype!r}: use one of {', '.join(DTYPES)}")
    if opts.batch_size != "auto" and not (str(opts.batch_size).isdigit()
                                          and int(opts.batch_size) > 0):
        raise ImhiError(f"--batch-size {opts.batch_size!r}: use auto or a positive integer")
    if is_api(opts):
        if opts.adapter:
            raise ImhiError("--adapter needs a local backend (hf, hf-seq2seq, vllm): an API "
                            "serves a model as it is")
        if opts.num_concurrent < 1:
            raise ImhiError("--num-concurrent must be at least 1")
        api_key(opts)
        if opts.base_url:
            check_reachable(opts.base_url)
        return
    if opts.base_url:
        raise ImhiError(f"--base-url is for the API backends ({', '.join(API_BACKENDS)}), "
                        f"not {opts.backend}")
    local_model_dir(opts.model)
    if opts.adapter:
        check_adapter(opts.adapter)
    if opts.backend == "vllm":
        if find_spec("vllm") is None:
            raise ImhiError("the vllm backend needs vLLM, which runs on CUDA GPUs only: "
                            "pip install 'imhi-bench[vllm]' on a GPU machine, or use --backend hf")
        if not 0 < opts.gpu_memory_utilization <= 1:
            raise ImhiError("--gpu-memory-utilization must be in (0, 1]")
    if opts.adapter and find_spec("peft") is None and opts.backend != "vllm":
        raise ImhiError("--adapter needs peft: pip install 'imhi-bench[train]'")


# --------------------------------------------------------------------------------------
# lm-eval model arguments
# --------------------------------------------------------------------------------------

def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def flash_attention_available() -> bool:
    """flash-attn is a GPU-only extra; without it transformers' SDPA attention is used."""
    if find_spec("flash_attn") is None:
        return False
    import torch

    return torch.cuda.is_available()


def model_args(opts: ModelOptions) -> tuple[str, dict]:
    """(lm-eval registry name, constructor arguments) of the backend.  No secrets: the API
    key is read by the model class from the environment variable named here."""
    batch = opts.batch_size if opts.batch_size == "auto" else int(opts.batch_size)
    if opts.backend in ("hf", "hf-seq2seq"):
        args: dict = {
            "pretrained": opts.model,
            "backend": "seq2seq" if opts.backend == "hf-seq2seq" else "causal",
            "dtype": opts.dtype,
            "batch_size": batch,
            "device": opts.device or default_device(),
            "trust_remote_code": opts.trust_remote_code,
        }
        if opts.revision:
            args["revision"] = opts.revision
        if opts.adapter:
            args["peft"] = opts.adapter
        if opts.max_batch_tokens:
            args["max_batch_tokens"] = opts.max_batch_tokens
        if flash_attention_available() and opts.dtype in ("float16", "bfloat16", "auto"):
            args["attn_implementation"] = "flash_attention_2"
        return "imhi-hf", args
    if opts.backend == "vllm":
        args = {
            "pretrained": opts.model,
            "dtype": opts.dtype,
            "batch_size": batch,
            "tensor_parallel_size": opts.tensor_parallel_size,
            "data_parallel_size": opts.data_parallel_size,
            "gpu_memory_utilization": opts.gpu_memory_utilization,
            "seed": opts.seed,
            "trust_remote_code": opts.trust_remote_code,
        }
        if opts.revision:
            args["revision"] = opts.revision
        if opts.max_model_len:
            args["max_model_len"] = opts.max_model_len
        if opts.adapter:
            args["lora_local_path"] = str(Path(opts.adapter).expanduser().resolve())
            rank = _adapter_rank(Path(opts.adapter).expanduser())
            if rank:
                args["max_lora_rank"] = rank
        return "vllm", args
    if opts.backend in API_BACKENDS:
        args = {
            "model": opts.model,
            "base_url": opts.base_url,
            "api_key_env": opts.api_key_env,  # None: OPENAI_API_KEY, optional for --base-url
            "num_concurrent": opts.num_concurrent,
            "max_retries": opts.max_retries,
            "timeout": opts.timeout,
            "seed": opts.seed,
        }
        return f"imhi-{opts.backend}", args
    raise ImhiError(f"unknown backend {opts.backend!r}: use one of {', '.join(BACKENDS)}")


def _adapter_rank(adapter_dir: Path) -> int | None:
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    r = cfg.get("r")
    return int(r) if isinstance(r, int) else None


# --------------------------------------------------------------------------------------
# Identity: provenance and the generation-cache key
# --------------------------------------------------------------------------------------

def _json_sha256(path: Path) -> str | None:
    """sha256 of a JSON file's canonical form (key order and spacing do not matter)."""
    try:
        obj = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _weights_fingerprint(folder: Path) -> list[list]:
    """Name, size and mtime of each weight file: cheap to take (hashing 14 GB is not) and
    changes when a model is retrained in place."""
    out = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in WEIGHT_SUFFIXES:
            st = f.stat()
            out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def model_config_sha256(opts: ModelOptions) -> str | None:
    """sha256 of the model's config.json (local folder, or the hub cache for an id)."""
    if is_api(opts):
        return None
    local = local_model_dir(opts.model)
    if local is not None:
        return _json_sha256(local / "config.json")
    try:
        from transformers.utils import cached_file

        path = cached_file(opts.model, "config.json", revision=opts.revision,
                           _raise_exceptions_for_missing_entries=False)
    except Exception:  # noqa: BLE001 - provenance is best effort for hub ids
        return None
    return _json_sha256(Path(path)) if path else None


def adapter_config_sha256(opts: ModelOptions) -> str | None:
    if not opts.adapter:
        return None
    return _json_sha256(Path(opts.adapter).expanduser() / "adapter_config.json")


def model_identity(opts: ModelOptions) -> dict:
    """What a generation depends on besides the prompt and generation config."""
    ident: dict = {"backend": opts.backend, "model": opts.model}
    if is_api(opts):
        ident["base_url"] = opts.base_url or "https://api.openai.com/v1"
        return ident
    local = local_model_dir(opts.model)
    if local is not None:
        ident["model"] = str(local)
        ident["weights"] = _weights_fingerprint(local)
    ident.update(revision=opts.revision, dtype=opts.dtype,
                 config_sha256=model_config_sha256(opts))
    if opts.adapter:
        adapter = Path(opts.adapter).expanduser().resolve()
        ident["adapter"] = str(adapter)
        ident["adapter_weights"] = _weights_fingerprint(adapter)
        ident["adapter_config_sha256"] = adapter_config_sha256(opts)
    return ident


def library_versions(opts: ModelOptions) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = ["lm_eval", "transformers", "torch", "datasets"]
    if opts.adapter:
        names.append("peft")
    if opts.backend == "vllm":
        names.append("vllm")
    if is_api(opts):
        names.append("openai")
    out = {}
    for n in names:
        try:
            out[n] = version(n.replace("_", "-"))
        except PackageNotFoundError:
            out[n] = None
    return out
