"""Which device models run on (torch is imported only when asked)."""

from __future__ import annotations

from importlib.util import find_spec


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def flash_attention_available() -> bool:
    """flash-attn is a GPU-only extra; without it transformers' SDPA attention is used."""
    if find_spec("flash_attn") is None:
        return False
    import torch

    return torch.cuda.is_available()
