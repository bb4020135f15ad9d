"""`imhi-bench data fetch` and fetch-on-first-use: download the released IMHI files, verified.

Files come from the MentaLLaMA GitHub repository pinned at one commit, so the bytes are the
ones the release manifest (`release_manifest.json`) records: by sha256, or by git blob id for
the files recorded from the repository's tree.  Each file is verified (`release.verify`) before
it is moved into place, and a file already present and verified is skipped.

Failures are reported by cause, not by file, and a connection error (DNS, refused, timeout)
stops the run: every other file would wait out the same timeout for the same answer.

Bounded in memory and time, whatever the server does: a file is read only up to the size
the manifest records (`UNRECORDED_MAX_BYTES` for those it records by git blob id), a file
must arrive within `--timeout` plus one second per `MIN_RATE` bytes (a server that trickles
stops the run, as an unreachable one does), and the whole fetch within `--deadline`.  Each
download runs in a daemon thread the main thread waits on with that limit, so nothing the
server does (slow headers, a trickle that resets every socket timeout) holds it longer.
"""

from __future__ import annotations

import http.client
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark import release
from imhi_bench.benchmark.data import DATA_DIR_ENV, resolve_data_dir
from imhi_bench.benchmark.release import verify
from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.fileio import atomic_write_bytes, check_creatable

MENTALLAMA_COMMIT = "42cd29dfb91092843daae53ec162c75605d753ff"
DEFAULT_BASE_URL = (
    f"https://raw.githubusercontent.com/SteveKGYang/MentalLLaMA/{MENTALLAMA_COMMIT}/"
)
BASE_URL_ENV = "IMHI_DATA_BASE_URL"
# Per socket operation, for fetch on first use: a command the user did not ask to download
# anything must fail within seconds offline, not after the 60 s `data fetch` allows.
FIRST_USE_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 60.0
# The whole of `data fetch`: the release is 45 MB, so about 13 KB/s.
DEFAULT_DEADLINE = 3600.0
# A file gets --timeout plus one second per MIN_RATE bytes (3.2 MB, the largest: 200 s).
MIN_RATE = 16 * 1024
# The cap on files the manifest records by git blob id only (no size): SWMH's test files
# and the Irf/MultiWD train files, each a few MB.
UNRECORDED_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 16


@dataclass(frozen=True)
class FetchResult:
    path: str  # relative to the data dir
    state: str  # downloaded | present | failed
    message: str = ""  # for failed: the cause, worded the same for every file it hit


class _Unreachable(Exception):
    """The server cannot be reached at all (or sends too slowly): no point trying the
    other files."""


class _TooLarge(Exception):
    """The server sent more than the file's recorded size."""


def _url(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + urllib.parse.quote(rel)


def _host(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    return parsed.netloc or parsed.path or url


def _download(url: str, timeout: float, limit: int, stop: threading.Event) -> bytes:
    """The body at `url`, read in single receives (`read1`: a trickle cannot keep one read
    going for long) until `stop` is set; `_TooLarge` past `limit` bytes."""
    req = urllib.request.Request(url, headers={"User-Agent": "imhi-bench"})
    chunks: list[bytes] = []
    got = 0
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http/https/file)
        read = getattr(resp, "read1", resp.read)  # file:// answers have no read1
        while not stop.is_set():
            chunk = read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            got += len(chunk)
            if got > limit:
                raise _TooLarge
            chunks.append(chunk)
    raise TimeoutError("stopped")


def _download_within(url: str, timeout: float, limit: int, seconds: float) -> bytes | None:
    """`_download` in a daemon thread, waited on for at most `seconds`: None when it did not
    finish by then (the thread stops at its next receive, and is not waited for)."""
    out: list = []
    stop = threading.Event()

    def run() -> None:
        try:
            out.append(_download(url, timeout, limit, stop))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            out.append(e)

    t = threading.Thread(target=run, daemon=True, name="imhi-fetch")
    t.start()
    t.join(max(0.0, seconds))
    if not out:
        stop.set()
        return None
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _verified(path: Path, meta: dict) -> bool:
    try:
        return verify(path, meta).ok
    except ImhiError:  # unreadable: downloaded again, and replaced
        return False


def _file_seconds(timeout: float, size: int | None) -> float:
    return timeout + (size if size is not None else 8 * 1024 * 1024) / MIN_RATE


def check_limits(timeout: float, deadline: float) -> None:
    """--timeout and --deadline: positive, finite seconds."""
    for option, value, default in (("--timeout", timeout, DEFAULT_TIMEOUT),
                                   ("--deadline", deadline, DEFAULT_DEADLINE)):
        if not (math.isfinite(value) and value > 0):
            raise ImhiError(f"{option} {value:g}: give a positive number of seconds "
                            f"(default {default:g})")


def check_dest(root: Path, option: str = "--dest") -> None:
    """The data dir can be a folder this process writes files into."""
    if root.exists() and not root.is_dir():
        raise ImhiError(f"{option} {root} is a file, not a folder: pass the folder to put "
                        "the IMHI files in")
    check_creatable(root / "LICENSE", option, shown=root)


def _cause(url: str, base: str, e: BaseException) -> str:
    """One line for why `url` could not be downloaded, the same for every file it hits;
    raises `_Unreachable` (with that line) when the server itself cannot be reached."""
    host = _host(url)
    if isinstance(e, urllib.error.HTTPError):
        if 300 <= e.code < 400:  # urllib gives up on a redirect loop with a 3-line reason
            return f"{host} redirects in a loop (HTTP {e.code}): check --base-url"
        return f"{host} answered HTTP {e.code} {first_line(Exception(e.reason), 80)} (is " \
               f"--base-url the repository at commit {MENTALLAMA_COMMIT[:7]}?)"
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, FileNotFoundError):
        return f"not found under {base}"
    if isinstance(reason, (OSError, TimeoutError)):  # DNS, refused, unreachable, timeout, TLS
        text = getattr(reason, "strerror", None) or first_line(reason)
        raise _Unreachable(f"cannot reach {host}: {text}")
    if isinstance(e, http.client.HTTPException):
        return f"{host} sent a broken answer ({type(e).__name__})"
    return f"cannot download from {host}: {first_line(Exception(str(reason)))}"


def fetch(
    dest: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    only: Callable[[str], bool] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    progress: bool = True,
    option: str = "--dest",
) -> list[FetchResult]:
    """Download every released file (or those `only` accepts) into `dest`, one result per
    file; stops downloading at the first connection error, a server too slow, or past
    `deadline` seconds (the files left are `failed` with that cause, unless already
    present).  A file that cannot be written (a full disk) is an ImhiError."""
    from imhi_bench.core.urls import mask_url

    check_limits(timeout, deadline)
    root = resolve_data_dir(dest)
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if urllib.parse.urlparse(base).scheme not in ("http", "https", "file"):
        raise ImhiError(f"base URL {mask_url(base)!r} must start with http://, https:// or "
                        "file://")
    check_dest(root, option)
    items = [(rel, meta) for rel, meta in release.release_manifest().items()
             if only is None or only(rel)]
    if not items:
        raise ImhiError("nothing to fetch: no released file matches --sets/--formats "
                        "(CLP was never released, and the expert set has no CLP file)")
    from tqdm import tqdm

    results: list[FetchResult] = []
    # The bar counts files handled: once the server is out of reach (or the deadline is
    # past) it stops there, rather than racing to 100% over files that all fail.
    bar = tqdm(total=len(items), desc="fetch IMHI", unit="file", disable=not progress)
    try:
        _fetch_items(items, root, base, timeout, deadline, option, results, bar)
    finally:
        bar.close()
    return results


def _fetch_items(items: list, root: Path, base: str, timeout: float, deadline: float,
                 option: str, results: list[FetchResult], bar) -> None:
    """`fetch`'s loop: one result per item appended to `results`."""
    unreachable = ""
    ends = time.monotonic() + deadline
    past_deadline = (f"data fetch ran past --deadline {deadline:g} s (stopped there): run it "
                     "again for the rest (verified files are kept), or raise --deadline")
    for rel, meta in items:
        if not unreachable:
            bar.update(len(results) - bar.n)
        target = root / rel
        if target.is_file() and _verified(target, meta):
            results.append(FetchResult(rel, "present"))
            continue
        left = ends - time.monotonic()
        if not unreachable and left <= 0:
            unreachable = past_deadline
        if unreachable:
            results.append(FetchResult(rel, "failed", unreachable))
            continue
        url = _url(base, rel)
        size = meta.get("bytes")
        host = _host(url)
        try:
            data = _download_within(url, timeout, UNRECORDED_MAX_BYTES if size is None
                                    else int(size), min(left, _file_seconds(timeout, size)))
        except _TooLarge:
            results.append(FetchResult(rel, "failed", (
                f"{host} sent more bytes than the release's file has: not written (is "
                f"--base-url the repository at commit {MENTALLAMA_COMMIT[:7]}?)")))
            continue
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            try:
                results.append(FetchResult(rel, "failed", _cause(url, base, e)))
            except _Unreachable as stop:
                unreachable = str(stop)
                results.append(FetchResult(rel, "failed", unreachable))
            continue
        if data is None:  # too slow: every other file would crawl the same way
            unreachable = past_deadline if time.monotonic() >= ends else (
                f"{host} sends too slowly: a file did not arrive within --timeout "
                f"{timeout:g} s plus 1 s per {MIN_RATE // 1024} KiB of it (stopped there): "
                "retry on a faster connection, or raise --timeout")
            results.append(FetchResult(rel, "failed", unreachable))
            continue
        if not (v := verify(data, meta)).ok:
            results.append(FetchResult(
                rel, "failed",
                f"not written: the downloaded {v.kind} differs from the release's (is "
                f"--base-url the repository at commit {MENTALLAMA_COMMIT[:7]}?)",
            ))
            continue
        try:
            atomic_write_bytes(target, data)
        except OSError as e:  # a full disk, a folder made read-only meanwhile
            got = sum(r.state == "downloaded" for r in results)
            raise ImhiError(f"cannot write {target} ({e.strerror or type(e).__name__}): free "
                            f"space there or pass {option} on another disk ({got} files "
                            "written before it are kept, verified)") from None
        results.append(FetchResult(rel, "downloaded"))
    if not unreachable:
        bar.update(len(results) - bar.n)


def failure_lines(results: list[FetchResult], *, names: int = 3) -> list[str]:
    """One line per cause of failure, with how many files it hit (and which, when few)."""
    by_cause: dict[str, list[str]] = {}
    for r in results:
        if r.state == "failed":
            by_cause.setdefault(r.message, []).append(r.path)
    lines = []
    for cause, paths in by_cause.items():
        n = f"{len(paths)} file{'s' if len(paths) != 1 else ''}"
        lines.append(f"{cause} ({n}: {', '.join(paths)})" if len(paths) <= names
                     else f"{cause} ({n})")
    return lines


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


def _has_release(root: Path, train: bool) -> bool:
    """Whether a data dir holds any of the release a command needs: a test instruction
    file (and, for training, a train file).  Any at all: a partial copy is the user's (or
    an interrupted fetch's) and gets the missing-file guidance, not a download."""
    from imhi_bench.benchmark.sets import FORMATS

    if not any((root / FORMATS["instruction"]).glob("*.csv")):
        return False
    return not train or any((root / "train_data").rglob("*.csv"))


def ensure_release(
    data_dir: str | os.PathLike | None, *, train: bool = False, base_url: str | None = None
) -> Path:
    """The data dir a command will read, fetched there first on first use.

    Only the per-user default dir is filled, and only when it holds no test instruction
    file at all (with `train`, no train file either): an explicit `data_dir` or
    $IMHI_DATA_DIR is the user's copy, and missing files there get the usual guidance.
    Fetches the test and expert files, the DR annotations and the licence (with `train`,
    the train/val files too), verified, with a progress bar, and says where on stderr."""
    root = resolve_data_dir(data_dir)
    if data_dir or os.environ.get(DATA_DIR_ENV) or _has_release(root, train):
        return root
    print(f"imhi-bench: no IMHI data yet: fetching the MentaLLaMA release (commit "
          f"{MENTALLAMA_COMMIT[:7]}, verified) into {root} (once; --data-dir or "
          f"${DATA_DIR_ENV} use a copy of your own)", file=sys.stderr)
    results = fetch(root, base_url=base_url, timeout=FIRST_USE_TIMEOUT, option="--data-dir",
                    only=None if train else (lambda rel: not rel.startswith("train_data/")))
    causes = failure_lines(results)
    if causes and not _has_release(root, train):
        raise ImhiError(
            f"no IMHI data in {root}, and fetching it failed: {causes[0]}; run `imhi-bench "
            f"data fetch` when online, or point --data-dir / ${DATA_DIR_ENV} at a copy"
        )
    got = sum(r.state == "downloaded" for r in results)
    print(f"imhi-bench: fetched {got} IMHI files into {root}", file=sys.stderr)
    for cause in causes:  # some files failed, but enough is there to run: say which
        print(f"imhi-bench: warning: {cause}; `imhi-bench data check` lists what is missing",
              file=sys.stderr)
    return root
