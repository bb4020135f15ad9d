"""The generation cache file: shared by concurrent workers, opened at once on a new file."""

from __future__ import annotations

import threading

from imhi_bench.generation_cache import GenerationCache


def test_workers_opening_a_new_cache_at_once_all_succeed_and_share_it(tmp_path):
    """Two submission workers may start on a fresh cache together: opening switches the new
    file to WAL, which deadlocks between simultaneous openers now and then (see
    sqlite_wal); every opener must still get the cache, and see the others' rows."""
    for attempt in range(30):
        path = tmp_path / f"cache{attempt}.sqlite"
        errors: list[BaseException] = []

        def opener(k: int, path=path, errors=errors) -> None:
            try:
                cache = GenerationCache(path, {"model": "m"})
                cache.put(cache.key(f"prompt {k}", {}), f"generation {k}")
                cache.close()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=opener, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {attempt}"
        reader = GenerationCache(path, {"model": "m"})
        keys = [reader.key(f"prompt {k}", {}) for k in range(6)]
        assert sorted(reader.get_many(keys).values()) == [f"generation {k}" for k in range(6)]
        reader.close()
