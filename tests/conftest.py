"""Shared test setup: offline Hugging Face, every per-user folder a temp dir, and the IMHI
data dir.

The released IMHI files are read from ../shared/imhi beside the project (or $IMHI_DATA_DIR);
they are never copied into the repository.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMHI = ROOT.parent / "shared" / "imhi"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("IMHI_DATA_DIR", str(SHARED_IMHI))
# Nothing a test does may touch the user's files: the store, the generation cache, the
# submissions folder, the HF home, and every per-user folder (platformdirs reads XDG_*, and
# libraries such as matplotlib or Chromium write under HOME) are a session temp dir's.
# tests/test_user_dirs.py checks what a command writes when these are left to default.
_session = Path(tempfile.mkdtemp(prefix="imhi-test-session-"))
_DIRS = {"HOME": "home", "XDG_CACHE_HOME": "xdg-cache", "XDG_DATA_HOME": "xdg-data",
         "XDG_CONFIG_HOME": "xdg-config", "XDG_STATE_HOME": "xdg-state",
         "HF_HOME": "hf", "MPLCONFIGDIR": "matplotlib", "IMHI_CACHE_DIR": "generation-cache",
         "IMHI_SUBMISSIONS_DIR": "submissions"}
for _var, _name in _DIRS.items():
    (_session / _name).mkdir()
    os.environ[_var] = str(_session / _name)
os.environ["IMHI_DB_URL"] = "sqlite:///" + str(_session / "store.sqlite")


@pytest.fixture(scope="session")
def imhi_dir() -> Path:
    path = Path(os.environ["IMHI_DATA_DIR"])
    if not (path / "test_data").is_dir():
        pytest.fail(f"IMHI data not found at {path}: set IMHI_DATA_DIR or put it at {SHARED_IMHI}")
    return path
