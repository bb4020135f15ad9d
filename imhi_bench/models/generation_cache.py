"""Generations already made, kept so that an interrupted `imhi-bench eval` resumes.

One SQLite file holds every generation, keyed by sha256 of (model identity, generation
config, prompt); the model identity is backend + model + revision + adapter + dtype + a
fingerprint of the weights, built by `imhi_bench.models.identity.model_identity`.  Each generation
is committed as soon as the backend returns it (lm-eval's per-sample `cache_hook`), so a
crash or Ctrl-C loses at most the batch in flight.

`CachedLM` wraps any lm-eval `LM`: cached requests are answered from the file and only the
rest reach the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.sqlite_wal import enable_wal

CACHE_DIR_ENV = "IMHI_CACHE_DIR"
FILE_NAME = "generations.sqlite"
# How long a connection waits for another process's lock on the file (workers share it).
BUSY_TIMEOUT_S = 30.0


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("imhi-bench"))


def check_cache_dir(cache_dir: str | os.PathLike | None) -> None:
    """The cache file can be made or opened in `cache_dir` (default `default_cache_dir`):
    a read-only or non-folder cache dir fails in seconds, before any model loads."""
    from imhi_bench.core.fileio import check_creatable

    path = Path(cache_dir or default_cache_dir()).expanduser() / FILE_NAME
    if path.exists() and not path.is_file():
        raise ImhiError(f"--cache-dir: {path} is not a file: pass another --cache-dir")
    check_creatable(path, "--cache-dir")


_MODELS_TABLE = ("CREATE TABLE IF NOT EXISTS models (key TEXT PRIMARY KEY, "
                 "identity TEXT NOT NULL, last_used REAL NOT NULL)")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


class GenerationCache:
    """A key -> generation store in one SQLite file; counts what it served and stored."""

    def __init__(self, path: str | os.PathLike, model_identity: dict):
        self.path = Path(path)
        self.model_key = hashlib.sha256(_canonical(model_identity).encode()).hexdigest()
        self.hits = 0
        self.stored = 0
        self.written: set[str] = set()  # keys stored in this run
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            # WAL + NORMAL: a commit per generation costs no fsync, and a crash still
            # keeps every committed row.
            enable_wal(self._db, timeout_s=BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, "
                "model TEXT NOT NULL, generation TEXT NOT NULL, created REAL NOT NULL)"
            )
            # The model keys are hashes: this table lets `imhi-bench cache` name them.
            self._db.execute(_MODELS_TABLE)
            self._db.execute(
                "INSERT INTO models (key, identity, last_used) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET last_used = excluded.last_used",
                (self.model_key, _canonical(model_identity), time.time()),
            )
        except (OSError, sqlite3.Error) as e:
            raise ImhiError(
                f"cannot open the generation cache {self.path} ({e}): pass --cache-dir DIR "
                "on a writable disk, or --no-cache"
            ) from None

    def key(self, prompt: str, gen_kwargs: dict) -> str:
        text = self.model_key + "\0" + _canonical(gen_kwargs) + "\0" + prompt
        return hashlib.sha256(text.encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, generation FROM generations WHERE key IN ({marks})", chunk
            )
            found.update(rows)
        return found

    def put(self, key: str, generation: str) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO generations (key, model, generation, created) "
                "VALUES (?, ?, ?, ?)",
                (key, self.model_key, generation, time.time()),
            )
        except sqlite3.Error as e:  # "database or disk is full", a read-only file
            raise ImhiError(f"cannot write to the generation cache {self.path} ({e}): free "
                            "space there, or pass --cache-dir on another disk (the "
                            f"{self.stored} generations stored so far are kept)") from None
        self.stored += 1
        self.written.add(key)

    def close(self) -> None:
        self._db.close()


def _open_existing(path: Path) -> sqlite3.Connection | None:
    """The cache file at `path` for `imhi-bench cache`, or None if nothing is cached there."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as e:
        raise ImhiError(f"{path} is not a readable generation cache ({e}): pass --cache-dir "
                        "with the folder eval used") from None
    if "generations" not in tables:
        db.close()
        raise ImhiError(f"{path} is not a generation cache (no generations table): pass "
                        "--cache-dir with the folder eval used")
    try:
        db.execute(_MODELS_TABLE)  # a cache made before models were recorded lacks it
    except sqlite3.Error as e:
        db.close()
        raise ImhiError(f"cannot update the generation cache {path} ({e}): retry when no "
                        "eval is starting, or check the file's permissions") from None
    return db


def summary(cache_dir: str | os.PathLike) -> dict:
    """What the cache in `cache_dir` holds: its file, size and generations per model."""
    path = Path(cache_dir) / FILE_NAME
    out: dict = {"path": str(path), "bytes": 0, "generations": 0, "models": []}
    db = _open_existing(path)
    if db is None:
        return out
    with db:
        rows = db.execute(
            "SELECT g.model, m.identity, COUNT(*), MAX(g.created) FROM generations g "
            "LEFT JOIN models m ON m.key = g.model GROUP BY g.model ORDER BY MAX(g.created) DESC"
        ).fetchall()
    db.close()
    out["bytes"] = _size(path)
    for key, identity, count, newest in rows:
        out["models"].append({"key": key, "identity": json.loads(identity) if identity else None,
                              "generations": count, "newest": newest})
        out["generations"] += count
    return out


def _size(path: Path) -> int:
    # WAL mode keeps recent pages in the -wal file beside the database.
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.is_file())


def prune(cache_dir: str | os.PathLike, *, older_than_days: float | None = None,
          model: str | None = None, everything: bool = False) -> dict:
    """Delete cached generations: those made more than `older_than_days` ago, those of
    `model` (its path or hub id as given to eval, or a key prefix from `summary`), or all.
    One transaction; the file is then compacted.  Returns counts and bytes freed."""
    if sum(x is not None and x is not False for x in (older_than_days, model, everything)) != 1:
        raise ImhiError("say what to prune: one of --older-than DAYS, --model MODEL or --all")
    if older_than_days is not None and not older_than_days >= 0:
        raise ImhiError(f"--older-than must be a number of days >= 0, not {older_than_days}")
    path = Path(cache_dir) / FILE_NAME
    db = _open_existing(path)
    if db is None:
        return {"path": str(path), "removed": 0, "bytes_freed": 0, "compacted": True}
    before = _size(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        if everything:
            where, params = "1", ()
        elif older_than_days is not None:
            where, params = "created < ?", (time.time() - older_than_days * 86400,)
        else:
            keys = _model_keys(db, model)
            where, params = f"model IN ({','.join('?' * len(keys))})", tuple(keys)
        removed = db.execute(f"DELETE FROM generations WHERE {where}", params).rowcount
        db.execute("DELETE FROM models WHERE key NOT IN (SELECT DISTINCT model FROM generations)")
        db.execute("COMMIT")
    except BaseException as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
        if isinstance(e, sqlite3.Error):
            raise ImhiError(f"could not prune the generation cache {path} ({e}); nothing was "
                            "deleted: retry when no eval is writing to it") from None
        raise
    compacted = True
    try:  # give the space back; an eval using the cache right now blocks this, not the delete
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError:
        compacted = False
    db.close()
    return {"path": str(path), "removed": removed, "bytes_freed": max(0, before - _size(path)),
            "compacted": compacted}


def _model_keys(db: sqlite3.Connection, model: str) -> list[str]:
    wanted = {model, str(Path(model).expanduser().resolve())}
    keys = [key for key, identity in db.execute("SELECT key, identity FROM models")
            if json.loads(identity).get("model") in wanted]
    if not keys and len(model) >= 8:
        keys = [k for (k,) in db.execute("SELECT DISTINCT model FROM generations")
                if k.startswith(model)]
    if not keys:
        raise ImhiError(f"no cached generations for model {model!r}: imhi-bench cache info "
                        "lists the cached models")
    return keys


def cached_lm(lm, cache: GenerationCache):
    """`lm` wrapped so that generate_until reuses and records generations in `cache`."""
    from lm_eval.api.model import LM

    class CachedLM(LM):
        """Delegates everything to the wrapped LM except generate_until."""

        def __init__(self) -> None:  # no super().__init__: rank etc. come from `lm`
            self.lm = lm
            self.cache = cache
            lm.set_cache_hook(_Hook(cache))

        def __getattr__(self, name: str):
            return getattr(self.lm, name)

        @property
        def rank(self):
            return self.lm.rank

        @property
        def world_size(self):
            return self.lm.world_size

        @property
        def tokenizer_name(self) -> str:
            return self.lm.tokenizer_name

        def apply_chat_template(self, chat_history, add_generation_prompt: bool = True):
            return self.lm.apply_chat_template(chat_history, add_generation_prompt)

        def chat_template(self, chat_template=False):
            return self.lm.chat_template(chat_template)

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return self.lm.loglikelihood(requests, disable_tqdm=disable_tqdm)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return self.lm.loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

        def generate_until(self, requests, disable_tqdm: bool = False):
            keys = [cache.key(r.args[0], r.args[1]) for r in requests]
            found = cache.get_many(keys)
            todo = [r for r, k in zip(requests, keys, strict=True) if k not in found]
            cache.hits += len(requests) - len(todo)
            if found:
                print(f"Reusing {len(requests) - len(todo)} cached generation(s); "
                      f"{len(todo)} to generate.", flush=True)
            fresh = iter(self.lm.generate_until(todo, disable_tqdm=disable_tqdm) if todo else [])
            out = []
            for k in keys:
                if k in found:
                    out.append(found[k])
                else:
                    text = next(fresh)
                    # Backends that do not call the per-sample hook are recorded here.
                    if k not in cache.written:
                        cache.put(k, text)
                    out.append(text)
            return out

    return CachedLM()


class _Hook:
    """lm-eval's per-sample cache hook: backends call add_partial after each generation."""

    def __init__(self, cache: GenerationCache):
        self.cache = cache

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        if attr != "generate_until":
            return
        context, gen_kwargs = req
        self.cache.put(self.cache.key(context, gen_kwargs), res)
