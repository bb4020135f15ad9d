"""Generations already made, kept so that an interrupted `imhi-bench eval` resumes.

One SQLite file holds every generation, keyed by sha256 of (model identity, generation
config, prompt); the model identity is backend + model + revision + adapter + dtype + a
fingerprint of the weights, built by `imhi_bench.backends.model_identity`.  Each generation
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

from imhi_bench.errors import ImhiError
from imhi_bench.sqlite_wal import enable_wal

CACHE_DIR_ENV = "IMHI_CACHE_DIR"
FILE_NAME = "generations.sqlite"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("imhi-bench"))


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
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            # WAL + NORMAL: a commit per generation costs no fsync, and a crash still
            # keeps every committed row.
            enable_wal(self._db, timeout_s=30)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, "
                "model TEXT NOT NULL, generation TEXT NOT NULL, created REAL NOT NULL)"
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
        self._db.execute(
            "INSERT OR REPLACE INTO generations (key, model, generation, created) "
            "VALUES (?, ?, ?, ?)",
            (key, self.model_key, generation, time.time()),
        )
        self.stored += 1
        self.written.add(key)

    def close(self) -> None:
        self._db.close()


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
