"""What every result file records about how it was made."""

from __future__ import annotations

import datetime as _dt
import subprocess
import sys
from pathlib import Path

from imhi_bench import __version__


def git_commit() -> str | None:
    """Commit of the imhi-bench checkout this code runs from (None for an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
        capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def base_provenance() -> dict:
    return {
        "imhi_bench_version": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
