"""Shared test setup: offline Hugging Face, a temp HF_HOME, and the IMHI data dir.

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
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="imhi-test-hf-")
os.environ.setdefault("IMHI_DATA_DIR", str(SHARED_IMHI))
# Nothing a test does may touch the user's real store or cache.
_db_dir = tempfile.mkdtemp(prefix="imhi-test-db-")
os.environ["IMHI_DB_URL"] = "sqlite:///" + os.path.join(_db_dir, "t.sqlite")


@pytest.fixture(scope="session")
def imhi_dir() -> Path:
    path = Path(os.environ["IMHI_DATA_DIR"])
    if not (path / "test_data").is_dir():
        pytest.fail(f"IMHI data not found at {path}: set IMHI_DATA_DIR or put it at {SHARED_IMHI}")
    return path
