"""Set-up every benchmark shares, done on import: offline Hugging Face libraries, the tests'
tiny-model builders on the path, and the IMHI data beside the checkout unless
$IMHI_DATA_DIR says otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "IMHI_DATA_DIR" not in os.environ and (ROOT.parent / "shared" / "imhi").is_dir():
    os.environ["IMHI_DATA_DIR"] = str(ROOT.parent / "shared" / "imhi")
