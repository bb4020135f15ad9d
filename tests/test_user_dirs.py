"""What a command writes outside the folders it is given.

`eval` and `score` run as a new user's would, in a process whose HOME and XDG_* folders are
empty and with no IMHI_CACHE_DIR / IMHI_DB_URL / HF_HOME: afterwards HOME holds nothing, and
the XDG folders hold only what README documents (the generation cache and the rendered task
files in the per-user cache dir, the store in the per-user data dir).  With the cache and the
store given, they hold nothing at all.  The suite itself runs under such temp folders
(tests/conftest.py), so `imhi-bench cache info` after `pytest` lists nothing of the tests'.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import tiny_llama_dir

from imhi_bench.models.generation_cache import FILE_NAME as CACHE_FILE
from imhi_bench.store.engine import DB_FILE_NAME

ROOT = Path(__file__).resolve().parents[1]
XDG = ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME")
# Variables that would send a write somewhere chosen: left unset, as on a new user's machine.
CHOSEN = ("IMHI_CACHE_DIR", "IMHI_DB_URL", "IMHI_SUBMISSIONS_DIR", "HF_HOME", "MPLCONFIGDIR")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def empty_user(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty folder holding HOME and the XDG folders, and the environment naming them."""
    user = tmp_path / "user"
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN}
    env["HOME"] = str(user / "home")
    for var in XDG:
        env[var] = str(user / var.lower())
    for var in ("HOME", *XDG):
        Path(env[var]).mkdir(parents=True)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return user, env


def cli(env: dict[str, str], cwd: Path, *commands: list[str]) -> str:
    """Run imhi-bench commands one after the other in one fresh process (one start-up)."""
    script = ("import sys\nfrom imhi_bench.cli.main import main\n"
              f"for argv in {[list(c) for c in commands]!r}:\n"
              "    if main(argv):\n        sys.exit(1)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


EVAL = ("eval", "--tasks", "imhi_dr", "--limit", "1", "--max-new-tokens", "2",
        "--bootstrap", "0")


def test_eval_and_score_write_only_the_documented_per_user_files(tmp_path, imhi_dir):
    user, env = empty_user(tmp_path)
    run = tmp_path / "run"
    out = cli(env, tmp_path, [*EVAL, "--model", str(tiny_llama_dir()), "--output", str(run)],
              ["score", "--predictions", str(run), "--name", "again", "--bootstrap", "0"])
    assert "Partial run (scored DR 1 of 405)" in out
    assert files_under(user / "home") == []  # nothing under HOME itself
    cache = user / "xdg_cache_home" / "imhi-bench"
    written = files_under(user)
    documented = {f"xdg_cache_home/imhi-bench/{CACHE_FILE}",
                  f"xdg_data_home/imhi-bench/{DB_FILE_NAME}"}
    # the tasks eval renders for lm-eval: one folder per content hash, beside the cache
    tasks = {f"xdg_cache_home/imhi-bench/{p}" for p in files_under(cache)
             if p.startswith("tasks_yaml/")}
    assert tasks and any(p.endswith("/utils.py") for p in tasks)
    # SQLite's journal files may remain beside a file while nothing holds it open
    extra = [p for p in written if p not in documented | tasks
             and not any(p == d + s for d in documented for s in ("-wal", "-shm", "-journal"))]
    assert extra == [], extra
    assert documented <= set(written)


def test_with_the_cache_and_store_given_nothing_is_written_per_user(tmp_path, imhi_dir,
                                                                     monkeypatch):
    # in this process (platformdirs reads XDG_* and HOME at each call), as the suite runs
    from imhi_bench.cli.main import main

    user, env = empty_user(tmp_path)
    for var in ("HOME", *XDG):
        monkeypatch.setenv(var, env[var])
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    assert main([*EVAL, "--model", str(tiny_llama_dir()), "--output",
                 str(tmp_path / "run")]) == 0
    assert files_under(user) == []
    assert (tmp_path / "cache" / CACHE_FILE).is_file()
    assert (tmp_path / "store.sqlite").is_file()


@pytest.mark.parametrize("var", ["HOME", *XDG, "HF_HOME", "IMHI_CACHE_DIR", "IMHI_DB_URL",
                                 "IMHI_SUBMISSIONS_DIR"])
def test_the_suite_runs_under_temp_folders(var):
    import tempfile

    value = os.environ[var]
    assert value.removeprefix("sqlite:///").startswith(tempfile.gettempdir()), (var, value)
