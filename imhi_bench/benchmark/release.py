"""The release manifest (`release_manifest.json`): every file of the pinned MentaLLaMA
release with the digest that verifies it, and `verify`, the one check of a file against it
(`data fetch`, its "already present" skip, `data check`, first-use fetching)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@functools.lru_cache(maxsize=1)
def release_manifest() -> dict[str, dict]:
    """Every released file (path relative to the data dir) with the digest that verifies it:
    "sha256" (and "bytes") for the files recorded from a local copy of the release, or
    "git_blob" (git's object id at the pinned commit) for those recorded from the repository's
    tree alone.  Callers look it up through this module (`release.release_manifest()`), so
    a test can stand in its own manifest."""
    text = resources.files(__package__).joinpath("release_manifest.json").read_text("utf-8")
    return json.loads(text)


def _git_blob_hash(size: int) -> hashlib._Hash:
    # git's object id: sha1 over a "blob <size>\0" header, then the bytes (not a security hash)
    return hashlib.sha1(b"blob %d\0" % size)  # noqa: S324


def git_blob_id(data: bytes) -> str:
    """git's object id of a file's bytes, as `git hash-object` prints it."""
    h = _git_blob_hash(len(data))
    h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    kind: str  # "sha256" | "git blob id": what the manifest entry records
    got: str
    want: str

    def describe(self) -> str:
        return f"{self.kind} {self.got[:12]}..., the release has {self.want[:12]}..."


def verify(source: bytes | str | os.PathLike, recorded: Mapping[str, object]) -> Verification:
    """Whether a file (its bytes, or a path) is the released one, by the digest its manifest
    entry records.  The one check behind `data fetch` (download and "already present"),
    `data check` and first-use fetching, so the two kinds of entry cannot drift apart."""
    if "sha256" in recorded:
        kind, want, h = "sha256", str(recorded["sha256"]), hashlib.sha256()
    elif "git_blob" in recorded:
        kind, want = "git blob id", str(recorded["git_blob"])
        size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
        h = _git_blob_hash(size)
    else:
        raise ValueError(f"release manifest entry {recorded!r} has neither sha256 nor git_blob")
    if isinstance(source, bytes):
        h.update(source)
    else:
        from imhi_bench.core.fileio import hash_file

        hash_file(source, h)
    got = h.hexdigest()
    return Verification(got == want.lower(), kind, got, want)
