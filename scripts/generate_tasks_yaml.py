"""Regenerate tasks_yaml/ (the IMHI lm-eval tasks) from imhi_bench/tasks/render.py.

    python scripts/generate_tasks_yaml.py          # rewrite tasks_yaml/
    python scripts/generate_tasks_yaml.py --check  # exit 1 if tasks_yaml/ is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imhi_bench.tasks.render import render_task_files, write_task_files

DEST = Path(__file__).resolve().parents[1] / "tasks_yaml"


def stale(dest: Path) -> list[str]:
    want = render_task_files()
    have = {p.name for p in dest.iterdir() if p.is_file()} if dest.is_dir() else set()
    out = [n for n, text in want.items()
           if not (dest / n).is_file() or (dest / n).read_text("utf-8") != text]
    return sorted(out + [n for n in have - set(want) if n.endswith((".yaml", "_yaml", ".py"))])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report stale files")
    args = p.parse_args()
    if args.check:
        bad = stale(DEST)
        for name in bad:
            print(f"stale: tasks_yaml/{name}")
        return 1 if bad else 0
    for name in stale(DEST):
        if name not in render_task_files():
            (DEST / name).unlink()
    names = write_task_files(DEST)
    print(f"wrote {len(names)} files into {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
