"""Loading a classifier labeler and predicting with it.

A labeler is a folder with one Hugging Face sequence classifier per set, in a subfolder named
as the set: ours (`train.train_labeler` saves the canonical class names as id2label) or the
paper's released MentalBERT classifiers, whose output indices follow `PAPER_CLASS_NAMES`
(= the index order of `imhi_bench.benchmark.sets`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from imhi_bench.benchmark.sets import SETS, get_set
from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.models.device import default_device
from imhi_bench.scoring.labels.reader import labeler_text

# The paper's released classifiers: output index -> the paper's class name, per set.  The
# one place that maps the paper's short names to ours (same index = same class).
PAPER_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "CAMS": ("none", "bias or abuse", "jobs and career", "medication", "relationship",
             "alienation"),
    **{name: ("no", "yes") for name in ("CLP", "DR", "dreaddit", "Irf", "loneliness", "MultiWD")},
    "SAD": ("school", "financial problem", "family issues", "social relationships", "work",
            "health issues", "emotion turmoil", "everyday decision making", "other"),
    "swmh": ("depression", "suicide", "anxiety", "bipolar", "no mental disorder"),
    "t-sid": ("depression", "suicide or self-harm", "PTSD", "no mental disorders (control)"),
}
assert set(PAPER_CLASS_NAMES) == set(SETS)
assert all(len(PAPER_CLASS_NAMES[n]) == len(s.classes) for n, s in SETS.items())

PREDICT_MAX_LENGTH = 512  # BERT's position table; the paper's inference truncates here too


def paper_to_canonical(set_name: str) -> dict[str, str]:
    """The paper's class name -> our class name, for one set."""
    s = get_set(set_name)
    return dict(zip(PAPER_CLASS_NAMES[s.name], s.classes, strict=True))


def _num_labels(config: dict) -> int:
    return len(config.get("id2label") or {}) or int(config.get("num_labels", 2))


def find_classifiers(path: str | os.PathLike) -> dict[str, Path]:
    """Set name -> classifier folder, for the subfolders of `path` named as IMHI sets.
    Reads only config.json files, so it is cheap enough to validate options early."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ImhiError(f"labeler folder {root} does not exist or is not a folder")
    found: dict[str, Path] = {}
    for sub in sorted(root.iterdir()):
        if not (sub / "config.json").is_file():
            continue
        try:
            s = get_set(sub.name)
        except ImhiError:
            continue  # not a set folder (e.g. a report)
        try:
            config = json.loads((sub / "config.json").read_text("utf-8"))
        except (OSError, ValueError):
            raise ImhiError(f"{sub / 'config.json'} is not valid JSON") from None
        n = _num_labels(config)
        if n != len(s.classes):
            raise ImhiError(
                f"classifier {sub} has {n} outputs but {s.name} has {len(s.classes)} classes "
                f"({', '.join(s.classes)})"
            )
        if s.name in found:
            raise ImhiError(f"{root} has two classifier folders for {s.name}: keep one")
        found[s.name] = sub
    found = {name: found[name] for name in SETS if name in found}  # the sets' order
    if not found:
        raise ImhiError(
            f"{root} has no classifier folders: expected subfolders named as IMHI sets "
            "(DR/, SAD/, ...) each holding a Hugging Face sequence classifier"
        )
    return found


def index_classes(set_name: str, id2label: dict) -> list[str]:
    """Our class name for each output index of a classifier of `set_name`.

    If every id2label name is one of ours or one of the paper's, names decide (so a folder
    saved with any index order works); otherwise (e.g. generic LABEL_0, LABEL_1 as in the
    paper's released folders) the index follows the paper's order."""
    s = get_set(set_name)
    by_name = {c.lower(): c for c in s.classes}
    by_name.update({p.lower(): c for p, c in paper_to_canonical(s.name).items()})
    labels = {int(k): str(v) for k, v in (id2label or {}).items()}
    names = [by_name.get(labels.get(i, "").strip().lower()) for i in range(len(s.classes))]
    if all(names) and len(set(names)) == len(names):
        return names  # type: ignore[return-value]
    return list(s.classes)


class Labeler:
    """Per-set classifiers loaded lazily from one folder.  `sets`, `name` and `predict`
    are what the scorer uses."""

    def __init__(self, root: Path, folders: dict[str, Path], *, device: str | None = None,
                 batch_size: int = 32, progress: bool = True):
        self.root = root
        self.folders = folders
        self.sets: tuple[str, ...] = tuple(folders)
        self.name = f"classifier:{root}"
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self._loaded: dict[str, tuple] = {}

    def __repr__(self) -> str:
        return f"Labeler({self.name!r}, sets={self.sets})"

    def _load(self, set_name: str):
        if set_name not in self._loaded:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            folder = self.folders[set_name]
            try:
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModelForSequenceClassification.from_pretrained(folder)
            except (OSError, ValueError) as e:
                first = first_line(e)
                raise ImhiError(f"cannot load classifier {folder} ({first})") from None
            model.to(self.device or default_device()).eval()
            classes = index_classes(set_name, model.config.id2label)
            self._loaded[set_name] = (model, tokenizer, classes, _max_length(model, tokenizer))
        return self._loaded[set_name]

    def predict(self, set_name: str, texts: Sequence[str]) -> list[str]:
        """Our class name for each text, in order: the classifier alone (scoring reads
        through `explicit.read_labels`, where an explicit answer the rules find decides).
        It reads each text as training did (`labeler_text`: no written-out option list)."""
        name = get_set(set_name).name
        if name not in self.folders:
            raise ImhiError(f"labeler {self.root} has no classifier for {name}")
        if not texts:
            return []
        model, tokenizer, classes, limit = self._load(name)
        ids = predict_ids(model, tokenizer, [labeler_text(name, t) for t in texts],
                          max_length=limit, batch_size=self.batch_size, progress=self.progress)
        return [classes[i] for i in ids]


def load_labeler(path: str | os.PathLike, *, device: str | None = None,
                 batch_size: int = 32) -> Labeler:
    """The labeler in `path`: one subfolder per set, named as the set (case-insensitive)."""
    folders = find_classifiers(path)
    return Labeler(Path(path).expanduser().resolve(), folders, device=device,
                   batch_size=batch_size)


def _max_length(model, tokenizer) -> int:
    limit = min(int(getattr(tokenizer, "model_max_length", PREDICT_MAX_LENGTH) or 0)
                or PREDICT_MAX_LENGTH, PREDICT_MAX_LENGTH)
    positions = getattr(model.config, "max_position_embeddings", None)
    return min(limit, positions) if positions else limit


def predict_ids(model, tokenizer, texts: Sequence[str], *, max_length: int,
                batch_size: int = 32, progress: bool = False) -> list[int]:
    """argmax class index of each text; length-sorted batches under inference_mode."""
    import torch
    from tqdm.auto import tqdm

    clean = [t if isinstance(t, str) else "" for t in texts]
    enc = tokenizer(clean, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(clean)), key=lambda i: len(enc[i]), reverse=True)
    out = [0] * len(clean)
    dev = next(model.parameters()).device
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for idx in tqdm(batches, desc="classifier labels", unit="batch", leave=False,
                        disable=not progress or None):
            batch = tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
            logits = model(**{k: v.to(dev) for k, v in batch.items()}).logits
            for i, j in zip(idx, logits.argmax(dim=-1).tolist(), strict=True):
                out[i] = j
    return out
