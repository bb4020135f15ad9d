"""Which device models run on (torch is imported only when asked)."""

from __future__ import annotations

from importlib.util import find_spec

from imhi_bench.core.errors import ImhiError


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def flash_attention_available() -> bool:
    """flash-attn is a GPU-only extra; without it transformers' SDPA attention is used."""
    if find_spec("flash_attn") is None:
        return False
    import torch

    return torch.cuda.is_available()


def check_device(device: str) -> None:
    """`--device` names a device this machine has; else one line instead of torch's
    `AssertionError: Torch not compiled with CUDA enabled` when the model moves there."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):  # torch's message lists twenty device types
        raise ImhiError(f"--device {device!r} is not a device: use cpu, cuda, cuda:N or "
                        "mps") from None
    if dev.type == "cpu":
        return
    if dev.type == "mps":
        backend = torch.backends.mps
    else:
        backend = getattr(torch, dev.type, None)  # cuda, xpu, ...
    if not callable(getattr(backend, "is_available", None)):
        raise ImhiError(f"--device {device}: the hf backend runs on cpu, cuda, cuda:N or mps")
    if not backend.is_available():
        why = ("this torch was built without CUDA" if dev.type == "cuda" and torch.version.cuda
               is None else f"no {dev.type} device is visible")
        raise ImhiError(f"--device {device}: {why}: use --device cpu, or run where a "
                        f"{dev.type} device is available")
    count = getattr(backend, "device_count", None)
    n = count() if callable(count) else None
    if dev.index is not None and n is not None and dev.index >= n:
        raise ImhiError(f"--device {device}: this machine has {n} {dev.type} device(s) "
                        f"({dev.type}:0 to {dev.type}:{n - 1})")
