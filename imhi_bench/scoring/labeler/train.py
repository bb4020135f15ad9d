"""Training and evaluating the classifier labeler on the released IMHI train data.

This is the paper's MentalBERT method, trainable here.  `train_labeler` fine-tunes one
classifier per set on the gold responses of the released train files, each response used
twice: as released (it starts with the label sentence) and as its explanation alone (the
label sentence removed), because real outputs often start with "Reasoning:" and never state
the label verbatim.  Each classifier is saved as a standard Hugging Face folder named as the
set, with the canonical class names as its id2label/label2id.  The training itself is the
generic `fit.fit_classifier`; this module decides which rows, which sets and what to report.

Splits (deterministic, by row index in the released file):
* sets with train and val files: train on train.csv; val rows with an even index select the
  epoch (model selection), odd ones are the held-out test;
* sets with only a val file (Irf, MultiWD): rows i % 10 < 8 train, i % 10 == 8 select,
  i % 10 == 9 held-out test.
Held-out accuracy is reported on explanations with the label sentence removed (the hard
case) and, for reference, on the full responses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark.data import load_split, present_splits
from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, SETS, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import atomic_write_json
from imhi_bench.core.sample import seeded_sample
from imhi_bench.scoring.labeler.fit import accuracy, fit_classifier, save_classifier
from imhi_bench.scoring.labeler.load import PREDICT_MAX_LENGTH, Labeler
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.scoring.labels.reader import explanation, labeler_text

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
    if "train" in present_splits(s.name, data_dir=data_dir):
        return SetSplit(s.name, labelled("train"), val[0::2], val[1::2],
                        "train.csv; val.csv even rows select, odd rows held out")
    return SetSplit(
        s.name,
        [r for i, r in enumerate(val) if i % 10 < 8],
        [r for i, r in enumerate(val) if i % 10 == 8],
        [r for i, r in enumerate(val) if i % 10 == 9],
        "val.csv only: rows i%10<8 train, i%10==8 select, i%10==9 held out",
    )


def training_texts(set_name: str, rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each gold response twice: as released (label sentence first) and explanation only,
    each as the labeler reads it (`labeler_text`)."""
    out = []
    for response, cls in rows:
        out.append((labeler_text(set_name, response), cls))
        out.append((labeler_text(set_name, explanation(response)), cls))
    return out


def _stripped(set_name: str, rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The rows with each response's label sentence removed: how selection and the held-out
    score read them, since real outputs often state no label sentence."""
    return [(labeler_text(set_name, explanation(t)), c) for t, c in rows]


def _full(set_name: str, rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The rows as released, as the labeler reads them."""
    return [(labeler_text(set_name, t), c) for t, c in rows]


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


def train_set(
    encoder: str, split: SetSplit, opts: TrainOptions, log: Callable[[str], None] = print
) -> tuple[object, object, dict]:
    """Fine-tune one classifier on `split`; (model, tokenizer, report) with the best epoch
    (by select accuracy, label sentence removed) loaded."""
    classes = list(SETS[split.set].classes)
    train_rows = seeded_sample(split.train, opts.max_train, opts.seed)
    examples = training_texts(split.set, train_rows)

    def on_epoch(epoch: int, acc: float) -> None:
        log(f"{split.set}: epoch {epoch}/{opts.epochs} select accuracy "
            f"(label sentence removed) {acc:.2f}%")

    model, tokenizer, best_epoch, best_acc = fit_classifier(
        encoder, classes, examples, _stripped(split.set, split.select), epochs=opts.epochs,
        max_length=opts.max_length, batch_size=opts.batch_size, lr=opts.lr,
        freeze_embeddings=opts.freeze_embeddings, seed=opts.seed, device=opts.device,
        progress=opts.progress, name=split.set, on_epoch=on_epoch,
    )

    def test_accuracy(rows: list[tuple[str, str]]) -> float:
        return round(accuracy(model, tokenizer, rows, classes, max_length=opts.max_length,
                              batch_size=opts.batch_size * 2), 2)

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
        "test_accuracy": test_accuracy(_stripped(split.set, split.test)),
        "test_accuracy_with_label": test_accuracy(_full(split.set, split.test)),
    }
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
        save_classifier(model, tokenizer, out / split.set)
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
        gold = [c for _, c in split.test]
        stripped = labeler.predict(name, [explanation(t) for t, _ in split.test])
        full = labeler.predict(name, [t for t, _ in split.test])

        def pct(pred: list[str], gold: list[str] = gold) -> float:
            return round(100.0 * sum(p == g for p, g in zip(pred, gold)) / len(gold), 2)

        out[name] = {"test": len(gold), "split": split.how, "test_accuracy": pct(stripped),
                     "test_accuracy_with_label": pct(full)}
    return out
