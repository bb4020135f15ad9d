"""`imhi-bench data fetch`: download the released IMHI files, verified by sha256.

Files come from the MentaLLaMA GitHub repository pinned at one commit, so the bytes are the
ones the release manifest (`release_manifest.json`) records.  Each file is verified before
it is moved into place, and a file already present with the right sha256 is skipped.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark.data import release_manifest, resolve_data_dir
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import atomic_write_bytes, sha256_file

MENTALLAMA_COMMIT = "42cd29dfb91092843daae53ec162c75605d753ff"
DEFAULT_BASE_URL = (
    f"https://raw.githubusercontent.com/SteveKGYang/MentalLLaMA/{MENTALLAMA_COMMIT}/"
)
BASE_URL_ENV = "IMHI_DATA_BASE_URL"


@dataclass(frozen=True)
class FetchResult:
    path: str  # relative to the data dir
    state: str  # downloaded | present | failed
    message: str = ""


def _url(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + urllib.parse.quote(rel)


def _download(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "imhi-bench"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http/https only)
        return resp.read()


def fetch(
    dest: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    only: Callable[[str], bool] | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[FetchResult]:
    """Download every released file (or those `only` accepts) into `dest`."""
    root = resolve_data_dir(dest)
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if urllib.parse.urlparse(base).scheme not in ("http", "https", "file"):
        raise ImhiError(f"base URL {base!r} must start with http://, https:// or file://")
    items = [(rel, meta) for rel, meta in release_manifest().items() if only is None or only(rel)]
    if not items:
        raise ImhiError("nothing to fetch: no released file matches the selection")
    from tqdm import tqdm

    results = []
    for rel, meta in tqdm(items, desc="fetch IMHI", unit="file", disable=not progress):
        target = root / rel
        if target.is_file() and sha256_file(target) == meta["sha256"]:
            results.append(FetchResult(rel, "present"))
            continue
        url = _url(base, rel)
        try:
            data = _download(url, timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            results.append(FetchResult(rel, "failed", f"cannot download {url}: {reason}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != meta["sha256"]:
            results.append(FetchResult(
                rel, "failed",
                f"{url} has sha256 {digest[:12]}..., the release has {meta['sha256'][:12]}...: "
                "not written (check --base-url)",
            ))
            continue
        atomic_write_bytes(target, data)
        results.append(FetchResult(rel, "downloaded"))
    return results


def selector(
    sets: list[str] | None, formats: list[str] | None, train: bool
) -> Callable[[str], bool]:
    """Which manifest paths a `data fetch --sets/--formats/--no-train` call wants."""
    from imhi_bench.benchmark.sets import FORMATS

    folders = [FORMATS[f] for f in (formats or FORMATS)]

    def wanted(rel: str) -> bool:
        if rel.startswith("train_data/"):
            return train and (sets is None or rel.split("/")[2] in sets)
        if rel.startswith("human_evaluation/DR_annotation/") or rel == "LICENSE":
            return sets is None and formats is None
        folder, _, name = rel.rpartition("/")
        return folder in folders and (sets is None or Path(name).stem in sets)

    return wanted

