"""The classifier labeler: per-set sequence classifiers that read a class from free text.

This is the paper's MentalBERT method, trainable here.  `train_labeler` fine-tunes one
classifier per set on the gold responses of the released train files, each response used
twice: as released (it starts with the label sentence) and as its explanation alone (the
label sentence removed), because real outputs often start with "Reasoning:" and never state
the label verbatim.  Each classifier is saved as a standard Hugging Face folder named as the
set, with the canonical class names as its id2label/label2id.

Splits (deterministic, by row index in the released file):
* sets with train and val files: train on train.csv; val rows with an even index select the
  epoch (model selection), odd ones are the held-out test;
* sets with only a val file (Irf, MultiWD): rows i % 10 < 8 train, i % 10 == 8 select,
  i % 10 == 9 held-out test.
Held-out accuracy is reported on explanations with the label sentence removed (the hard
case) and, for reference, on the full responses.

`load_labeler` loads such a folder, or the paper's released classifier folders, whose
output indices follow `PAPER_CLASS_NAMES` (= the index order of `imhi_bench.benchmark.sets`).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark.sets import SETS, get_set
from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.models.backends import default_device

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


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

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
        """Our class name for each text, in order."""
        name = get_set(set_name).name
        if name not in self.folders:
            raise ImhiError(f"labeler {self.root} has no classifier for {name}")
        if not texts:
            return []
        model, tokenizer, classes, limit = self._load(name)
        ids = predict_ids(model, tokenizer, texts, max_length=limit, batch_size=self.batch_size,
                          progress=self.progress)
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


# --------------------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------------------

@dataclass
class SetSplit:
    set: str
    train: list[tuple[str, str]]  # (gold response, class)
    select: list[tuple[str, str]]
    test: list[tuple[str, str]]
    how: str  # the split, in words, for the report


def trainable_sets() -> list[str]:
    return [s.name for s in SETS.values() if "val" in s.train_files]


def labeler_split(set_name: str, data_dir: str | os.PathLike | None = None) -> SetSplit:
    """The deterministic train / select / held-out split of one set (see the module doc)."""
    from imhi_bench.benchmark.data import load_split
    from imhi_bench.scoring.labels import gold_label

    s = get_set(set_name)
    if "val" not in s.train_files:
        raise ImhiError(
            f"IMHI releases no train data for {s.name}: the labeler can train on "
            f"{', '.join(trainable_sets())}"
        )

    def labelled(split: str) -> list[tuple[str, str]]:
        rows = load_split(s.name, split, data_dir=data_dir)
        where = s.train_files[split]["instruction"]
        return [(r["gpt-3.5-turbo"], gold_label(s.name, r["gpt-3.5-turbo"], f"{where} row {i + 1}"))
                for i, r in enumerate(rows)]

    val = labelled("val")
    if "train" in s.train_files:
        return SetSplit(s.name, labelled("train"), val[0::2], val[1::2],
                        "train.csv; val.csv even rows select, odd rows held out")
    return SetSplit(
        s.name,
        [r for i, r in enumerate(val) if i % 10 < 8],
        [r for i, r in enumerate(val) if i % 10 == 8],
        [r for i, r in enumerate(val) if i % 10 == 9],
        "val.csv only: rows i%10<8 train, i%10==8 select, i%10==9 held out",
    )


def training_texts(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each gold response twice: as released (label sentence first) and explanation only."""
    from imhi_bench.scoring.labels import explanation

    out = []
    for response, cls in rows:
        out.append((response.strip(), cls))
        out.append((explanation(response), cls))
    return out


def _subsample(rows: list[tuple[str, str]], n: int | None, seed: int) -> list[tuple[str, str]]:
    if n is None or n >= len(rows):
        return rows
    picked = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in picked]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

@dataclass
class TrainOptions:
    epochs: int = 3
    max_length: int = 256
    batch_size: int = 16
    lr: float = 5e-5
    max_train: int | None = None  # train rows per set (subsample), None = all
    freeze_embeddings: bool = False
    seed: int = 0
    device: str | None = None
    progress: bool = True

    def check(self) -> None:
        if self.epochs < 1:
            raise ImhiError(f"--epochs must be at least 1, got {self.epochs}")
        if not 8 <= self.max_length <= PREDICT_MAX_LENGTH:
            raise ImhiError(f"--max-length must be 8..{PREDICT_MAX_LENGTH}, got {self.max_length}")
        if self.batch_size < 1:
            raise ImhiError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 < self.lr < 1:
            raise ImhiError(f"--lr must be in (0, 1), got {self.lr}")
        if self.max_train is not None and self.max_train < 1:
            raise ImhiError(f"--max-train must be at least 1, got {self.max_train}")


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within chunks of 50 batches, then
    shuffle the batches (less padding, still random)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c: c + chunk], key=lambda i: lengths[i])
        batches += [part[i: i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _accuracy(model, tokenizer, rows: Sequence[tuple[str, str]], classes: Sequence[str],
              max_length: int, batch_size: int, *, strip_label: bool) -> float:
    from imhi_bench.scoring.labels import explanation

    texts = [explanation(t) if strip_label else t for t, _ in rows]
    pred = predict_ids(model, tokenizer, texts, max_length=max_length, batch_size=batch_size * 2)
    return 100.0 * sum(classes[p] == c for p, (_, c) in zip(pred, rows)) / max(1, len(rows))


def _save_folder(model, tokenizer, dest: Path) -> None:
    """Write a classifier folder so that `dest` is either the old or the new one, whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old."))
            os.replace(dest, old / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_encoder(encoder: str, classes: Sequence[str]):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new classifier head is "missing": expected
    try:
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        model = AutoModelForSequenceClassification.from_pretrained(
            encoder, num_labels=len(classes), id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)}, ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as e:
        first = first_line(e)
        raise ImhiError(
            f"cannot load encoder {encoder!r} ({first}): pass --encoder with a local folder "
            "or a Hugging Face id you can download"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def train_set(
    encoder: str, split: SetSplit, opts: TrainOptions, log: Callable[[str], None] = print
):
    """Fine-tune one classifier on `split`; (model, tokenizer, report) with the best epoch
    (by select accuracy) loaded."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    classes = list(SETS[split.set].classes)
    torch.manual_seed(opts.seed)
    model, tokenizer = _load_encoder(encoder, classes)
    model.to(opts.device or default_device())
    dev = next(model.parameters()).device
    if opts.freeze_embeddings:
        for p in model.base_model.get_input_embeddings().parameters():
            p.requires_grad = False
    train_rows = _subsample(split.train, opts.max_train, opts.seed)
    examples = training_texts(train_rows)
    index = {c: i for i, c in enumerate(classes)}
    ids = tokenizer([t for t, _ in examples], truncation=True,
                    max_length=opts.max_length)["input_ids"]
    targets = [index[c] for _, c in examples]
    lengths = [len(x) for x in ids]
    steps = opts.epochs * math.ceil(len(examples) / opts.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(optim, int(0.06 * steps), steps)
    rng = random.Random(opts.seed)
    best, best_acc, best_epoch = None, -1.0, 0
    for epoch in range(1, opts.epochs + 1):
        model.train()
        bar = tqdm(_batches(lengths, opts.batch_size, rng), desc=f"{split.set} epoch {epoch}",
                   unit="batch", leave=False, disable=not opts.progress or None)
        for idx in bar:
            batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            batch = {k: v.to(dev) for k, v in batch.items()}
            labels = torch.tensor([targets[i] for i in idx], device=dev)
            loss = model(**batch, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()
        if opts.epochs == 1:
            break  # nothing to select between
        acc = _accuracy(model, tokenizer, split.select, classes, opts.max_length,
                        opts.batch_size, strip_label=True)
        log(f"{split.set}: epoch {epoch}/{opts.epochs} select accuracy "
            f"(label sentence removed) {acc:.2f}%")
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if opts.epochs == 1:
        best_acc, best_epoch = None, 1
    elif best is not None and best_epoch != opts.epochs:
        model.load_state_dict(best)
    model.eval()
    report = {
        "set": split.set,
        "classes": classes,
        "split": split.how,
        "train_rows": len(train_rows),
        "train_examples": len(examples),
        "select": len(split.select),
        "test": len(split.test),
        "best_epoch": best_epoch,
        "select_accuracy": None if best_acc is None else round(best_acc, 2),
        "test_accuracy": round(_accuracy(model, tokenizer, split.test, classes,
                                         opts.max_length, opts.batch_size, strip_label=True), 2),
        "test_accuracy_with_label": round(_accuracy(model, tokenizer, split.test, classes,
                                                    opts.max_length, opts.batch_size,
                                                    strip_label=False), 2),
    }
    tokenizer.model_max_length = opts.max_length  # predict() truncates as training did
    return model, tokenizer, report


def train_labeler(
    encoder: str,
    out: str | os.PathLike,
    sets: Sequence[str] | None = None,
    opts: TrainOptions | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train and save one classifier per set under `out`; returns (and writes to
    out/labeler_report.json) the per-set report."""
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
    from imhi_bench.core.fileio import atomic_write_json

    opts = opts or TrainOptions()
    opts.check()
    names = [get_set(n).name for n in (sets or trainable_sets())]
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ImhiError(f"--out {out} is a file: give a folder")
    splits = [labeler_split(n, data_dir) for n in names]  # data problems fail before training
    reports = {}
    for split in splits:
        model, tokenizer, report = train_set(encoder, split, opts, log)
        _save_folder(model, tokenizer, out / split.set)
        reports[split.set] = report
        log(f"{split.set}: held-out accuracy {report['test_accuracy']:.2f}% (label sentence "
            f"removed), {report['test_accuracy_with_label']:.2f}% (full response); "
            f"saved {out / split.set}")
    result = {
        "encoder": encoder,
        "options": {k: v for k, v in vars(opts).items() if k not in ("device", "progress")},
        "sets": reports,
        "notice": NON_CLINICAL_NOTICE,
    }
    atomic_write_json(out / "labeler_report.json", result)
    return result


def evaluate_labeler(labeler: Labeler, sets: Sequence[str] | None = None,
                     data_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """Accuracy of a loaded labeler on the held-out split of each covered trainable set."""
    names = [get_set(n).name for n in sets] if sets else [
        n for n in labeler.sets if n in trainable_sets()]
    out = {}
    for name in names:
        if name not in labeler.sets:
            raise ImhiError(f"labeler {labeler.root} has no classifier for {name}")
        split = labeler_split(name, data_dir)
        from imhi_bench.scoring.labels import explanation

        gold = [c for _, c in split.test]
        stripped = labeler.predict(name, [explanation(t) for t, _ in split.test])
        full = labeler.predict(name, [t for t, _ in split.test])

        def pct(pred: list[str], gold: list[str] = gold) -> float:
            return round(100.0 * sum(p == g for p, g in zip(pred, gold)) / len(gold), 2)

        out[name] = {"test": len(gold), "split": split.how, "test_accuracy": pct(stripped),
                     "test_accuracy_with_label": pct(full)}
    return out
