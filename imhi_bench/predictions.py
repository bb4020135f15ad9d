"""Reading generations that already exist, for `imhi-bench score`.

Supported input: a folder in MentaLLaMA `IMHI.py` output format, one `<SET>.csv` per set
with columns `goldens` and `generated_text` (other columns, e.g. `labels` or a pandas index,
are ignored), the set taken from the file stem case-insensitively; or one such CSV file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.data import read_csv
from imhi_bench.errors import ImhiError
from imhi_bench.fileio import sha256_file
from imhi_bench.sets import SET_NAMES, get_set

GOLD = "goldens"
GENERATED = "generated_text"


@dataclass
class Prediction:
    doc_id: int
    gold: str
    generation: str
    prompt: str | None = None


@dataclass
class PredictionFile:
    set: str
    path: Path
    sha256: str
    rows: list[Prediction]


def _set_of(path: Path) -> str:
    try:
        return get_set(path.stem).name
    except ImhiError:
        raise ImhiError(
            f"{path.name}: the file name must be an IMHI set name ({' '.join(SET_NAMES)}), "
            f"e.g. DR.csv; rename {path.name} or move it out of the folder"
        ) from None


def read_imhi_csv(path: Path) -> PredictionFile:
    name = _set_of(path)
    rows = read_csv(path, (GOLD, GENERATED))
    preds = [Prediction(i, r[GOLD], r[GENERATED]) for i, r in enumerate(rows)]
    return PredictionFile(name, path, sha256_file(path), preds)


def load_predictions(path: str | os.PathLike) -> dict[str, PredictionFile]:
    """Every set's predictions under `path`, keyed by the set's released name."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ImhiError(f"{path} does not exist: pass a folder of <SET>.csv prediction files")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise ImhiError(f"{path} is not a .csv file: pass a folder of <SET>.csv files or one")
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise ImhiError(
                f"{path} holds no prediction files: expected one <SET>.csv per set "
                f"(e.g. DR.csv) with columns {GOLD}, {GENERATED}"
            )
    out: dict[str, PredictionFile] = {}
    for f in files:
        pf = read_imhi_csv(f)
        if pf.set in out:
            raise ImhiError(
                f"{out[pf.set].path.name} and {f.name} are both {pf.set} predictions: keep one"
            )
        out[pf.set] = pf
    return out
