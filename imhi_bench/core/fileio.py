"""Atomic file writes: a reader never sees a half-written result file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def swap_in(staging: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Put the finished folder `staging` at `dest` (a sibling): what was at `dest` is moved
    aside first and removed only once the new folder is in place, so a failure leaves one
    of the two whole."""
    import shutil

    staging, dest = Path(staging), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
    try:
        staging.rename(dest)
    except BaseException:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_shared(path: str | os.PathLike) -> None:
    """Give a file, or a folder and the files in it, the modes the umask gives new ones:
    mkdtemp and mkstemp make owner-only entries, and a finished run or model is shared."""
    umask = os.umask(0)
    os.umask(umask)
    path = Path(path)
    files = [f for f in path.iterdir() if f.is_file()] if path.is_dir() else [path]
    for f in files:
        f.chmod(0o666 & ~umask)
    if path.is_dir():
        path.chmod(0o777 & ~umask)


def hash_file(path: str | os.PathLike, h):
    """`h` (a hashlib object) updated with a file's bytes, read in 1 MiB chunks; an
    unreadable file (permissions, I/O error, a folder) is one line."""
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise unreadable(path, e) from None
    return h


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file; an unreadable one is one line (`hash_file`)."""
    return hash_file(path, hashlib.sha256()).hexdigest()


def unreadable(path: str | os.PathLike, e: OSError):
    """The one-line ImhiError for a file that exists but cannot be read."""
    from imhi_bench.core.errors import ImhiError

    return ImhiError(f"cannot read {path} ({e.strerror or type(e).__name__}): make it a "
                     "readable file (chmod u+r), or replace it")


def without_nan(value: Any) -> Any:
    """`value` with every NaN or infinity (not JSON) replaced by None, in nested dicts and
    lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(v) for v in value]
    return value


def check_creatable(path: str | os.PathLike, option: str, *,
                    shown: str | os.PathLike | None = None) -> None:
    """Fail now, before any work, when `path` (a file or folder the command will write, its
    missing folders made then) could not be created: its nearest existing ancestor must be a
    folder this process can create files in.  Probed with a real temporary file (permission
    bits lie to root and on read-only mounts, /proc refuses new files), removed at once, so
    a failure leaves nothing behind.  `shown`: what the message names as the option's value
    (default `path`)."""
    from imhi_bench.core.errors import ImhiError

    shown = path if shown is None else shown
    folder = Path(path).expanduser().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ImhiError(f"{option} {shown}: {folder} is a file, not a folder: pass a path "
                        "inside a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".imhi-bench-write-check-", dir=folder)
    except OSError as e:
        raise ImhiError(f"{option} {shown}: cannot create files in {folder} "
                        f"({e.strerror or type(e).__name__}): pass a path in a folder you can "
                        "write to") from None
    os.close(fd)
    os.unlink(probe)
