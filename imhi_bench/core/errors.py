"""The one exception type users see: its message is a single line naming the problem and the fix."""


class ImhiError(Exception):
    """A user-facing error.  The CLI prints `error: <message>` and exits with status 2."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type when it has none), for the
    one-line errors: library messages often run to many lines."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]
