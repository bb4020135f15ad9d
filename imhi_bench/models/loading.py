"""One way to say that a model would not load, wherever a model is loaded by name, and the
checks that can say so before any loading starts: the Hugging Face hub reachable (or the
model cached when it is offline), and safetensors weight files readable."""

from __future__ import annotations

import functools
import json
import os
import re
import ssl
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line

# How long the hub may take to answer one HEAD request before it counts as unreachable:
# huggingface_hub itself retries a refused connection for ~40 s (five backoffs) per file.
HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = ("1", "true", "yes", "on")
# "name" or "org/name"; anything else ("./m", "/abs/m", "~/m", "a/b/c") is meant as a path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# safetensors: 8-byte little-endian header length, then that much JSON.  The library
# refuses headers over 100 MB ("header too large"), and so does this check.
_SAFETENSORS_MAX_HEADER = 100_000_000


@contextmanager
def explain_load_failure(what: str, name: str, option: str) -> Iterator[None]:
    """Turn transformers' loading errors (a missing folder, an unknown hub id, a broken
    config, a damaged safetensors file) into one line naming the option that chose the
    model.  A hub id is checked first (`check_hub_model`): seconds, not retries."""
    if is_hub_id(name):
        check_hub_model(name, option)
    elif not Path(name).expanduser().exists():  # a path, else transformers calls it a bad id
        raise ImhiError(f"cannot load {what} {name!r}: no such folder: pass {option} with a "
                        "local folder or a Hugging Face id you can download")
    try:
        yield
    except (OSError, ValueError) as e:
        raise ImhiError(
            f"cannot load {what} {name!r} ({first_line(e)}): pass {option} with a local "
            "folder or a Hugging Face id you can download"
        ) from None
    except Exception as e:
        if not is_safetensors_error(e):
            raise
        raise ImhiError(f"cannot load {what} {name!r}: {damaged_weights_message(name)}") from None


# --------------------------------------------------------------------------------------
# Hugging Face hub
# --------------------------------------------------------------------------------------

def is_hub_id(name: str) -> bool:
    """`name` would be downloaded from the hub: no such path here, and shaped like an id."""
    return not Path(name).expanduser().exists() and bool(HUB_ID.match(name))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, as huggingface_hub read them at import or as
    the environment says now (a test or a caller may set them later)."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or any(
        os.environ.get(v, "").strip().lower() in _TRUE
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _probe(url: str, timeout: float) -> str | None:
    """None when anything answers HTTP at `url`; else why not.  Any status (even 4xx/5xx)
    counts as reachable, and so does a TLS failure (the hub client may trust other
    certificates than urllib does): only "nobody answers" fails fast."""
    try:
        req = urllib.request.Request(url, method="HEAD")
        urllib.request.urlopen(req, timeout=timeout).close()  # noqa: S310 - http(s) only
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ssl.SSLError):
            return None
        if isinstance(reason, OSError):
            return reason.strerror or first_line(reason)
        return str(reason)
    except (OSError, ValueError) as e:  # timeouts, resets, a malformed HF_ENDPOINT
        return getattr(e, "strerror", None) or first_line(e)
    return None


@functools.lru_cache(maxsize=4)
def hub_unreachable(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the hub at `endpoint` cannot be reached (None when it answers).  The probe runs
    in a thread so that a hanging DNS lookup, which no socket timeout bounds, is cut off
    too.  Asked once per process and endpoint."""
    out: list[str | None] = []
    t = threading.Thread(target=lambda: out.append(_probe(endpoint, timeout)), daemon=True,
                         name="imhi-hub-probe")
    t.start()
    t.join(timeout + 1.0)
    if not out:
        return f"no answer within {timeout:g} s"
    return out[0]


def _cached(model: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot even parse is not cached
        return False


def check_hub_model(model: str, option: str, *, what: str = "model",
                    revision: str | None = None) -> None:
    """Before loading hub id `model`: with the hub offline it must be in the local cache;
    with it online the hub must answer within seconds.  Either way the failure is one line
    naming HF_HUB_OFFLINE and local folders, instead of ~40 s of retries per file."""
    if hub_offline():
        if not _cached(model, revision):
            raise ImhiError(
                f"{option} {model} is not in the Hugging Face cache and the hub is offline "
                "(HF_HUB_OFFLINE): unset HF_HUB_OFFLINE to download it, or pass a local "
                f"{what} folder"
            )
        return
    endpoint = hub_endpoint()
    reason = hub_unreachable(endpoint)
    if reason is None:
        return
    if _cached(model, revision):
        fix = "it is in the local cache: set HF_HUB_OFFLINE=1 to use that copy"
    else:
        fix = (f"pass a local {what} folder, or download it where the hub is reachable and "
               "set HF_HUB_OFFLINE=1")
    raise ImhiError(f"{option} {model}: cannot reach the Hugging Face hub at {endpoint} "
                    f"({reason}): {fix}")


# --------------------------------------------------------------------------------------
# Weight files
# --------------------------------------------------------------------------------------

def is_safetensors_error(e: BaseException) -> bool:
    """safetensors' Rust error type derives from Exception only."""
    return type(e).__name__ == "SafetensorError"


def damaged_weights_message(where: str) -> str:
    return (f"a safetensors weight file in {where} is damaged (truncated or not safetensors): "
            "re-download or re-save the model")


def safetensors_header(path: Path) -> tuple[dict, int, int]:
    """(header, where the tensor data start, file size) of a .safetensors file, reading the
    header only; ValueError saying what is wrong when it does not read."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > _SAFETENSORS_MAX_HEADER or 8 + n > size:
                raise ValueError("its header is larger than the file")
            header = json.loads(fh.read(n))
    except OSError as e:
        raise ValueError(e.strerror or type(e).__name__) from None
    except UnicodeDecodeError:  # a ValueError whose message would be json's, not ours
        raise ValueError("its header is not JSON") from None
    except json.JSONDecodeError:
        raise ValueError("its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not JSON")
    return header, 8 + n, size


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a .safetensors file's header (None when it reads): a truncated
    download or a file overwritten with something else.  Reads the header only."""
    try:
        header, start, size = safetensors_header(path)
    except ValueError as e:
        return str(e)
    end = 0
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        offsets = meta.get("data_offsets") if isinstance(meta, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            return f"tensor {key!r} has no data offsets"
        end = max(end, int(offsets[1]))
    if start + end > size:
        return f"it is truncated: {size} bytes of the {start + end} its header describes"
    return None


def check_safetensors(folder: Path, option: str) -> None:
    """Every .safetensors file at the top of `folder` has a readable header: a damaged file
    fails now, named, rather than as `SafetensorError: header too large` after the model
    began loading."""
    for f in sorted(folder.glob("*.safetensors")):
        try:  # a file that cannot be opened is not damaged: say which it is
            open(f, "rb").close()
        except OSError as e:
            raise ImhiError(f"{option}: cannot read {f} ({e.strerror or first_line(e)}): "
                            "check that it is a file you may read") from None
        problem = safetensors_problem(f)
        if problem:
            raise ImhiError(f"{option}: {f} is damaged ({problem}): re-download or "
                            "re-save the model")
