"""One way to say that a model would not load, wherever a model is loaded by name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from imhi_bench.core.errors import ImhiError, first_line


@contextmanager
def explain_load_failure(what: str, name: str, option: str) -> Iterator[None]:
    """Turn transformers' loading errors (a missing folder, an unknown hub id, a broken
    config) into one line naming the option that chose the model."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise ImhiError(
            f"cannot load {what} {name!r} ({first_line(e)}): pass {option} with a local "
            "folder or a Hugging Face id you can download"
        ) from None
