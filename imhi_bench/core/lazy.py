"""Names of code as "module:attribute" strings, imported on first use: the registries
(model backends, quality metrics) list what exists without importing heavy libraries."""

from __future__ import annotations

import importlib
from typing import Any


def resolve(ref: str) -> Any:
    """The object a "package.module:attribute" string names (its module imported now)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
