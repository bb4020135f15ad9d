"""Running one function in several threads at once, for tests of concurrent openers and
writers (SQLite stores and caches)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def errors_in_threads(target: Callable[[int], object], n: int) -> list[BaseException]:
    """Call target(0), ..., target(n - 1), each in its own thread, all started before any is
    joined; return what they raised (empty when all succeeded)."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            target(k)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
