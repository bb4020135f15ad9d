"""A model's identity: what its generations depend on (the generation-cache key) and what a
run records about it (provenance)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imhi_bench.core.urls import mask_url
from imhi_bench.models.options import ModelOptions, is_api, local_model_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


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
        # masked: the cache file must not hold a password (credentials do not change what
        # a server generates, so they need no place in the key)
        ident["base_url"] = mask_url(opts.base_url) or "https://api.openai.com/v1"
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
