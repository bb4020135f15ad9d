"""Fine-tuning one Hugging Face sequence classifier on plain (text, class) rows.

Nothing here knows about IMHI sets or gold responses: the caller decides which rows train and
which select the epoch, so the classifier labeler (`train`) and a discriminative baseline
share one trainer.  `fit_classifier` trains with AdamW and a linear warm-up schedule on
length-bucketed shuffled batches, scores every epoch on the select rows and keeps the best;
`save_classifier` writes the standard folder that `load.load_labeler` and
`AutoModelForSequenceClassification.from_pretrained` read.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from imhi_bench.models.device import default_device
from imhi_bench.models.loading import explain_load_failure
from imhi_bench.scoring.labeler.load import predict_ids

Rows = Sequence[tuple[str, str]]  # (text, class name)


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


def accuracy(model, tokenizer, rows: Rows, classes: Sequence[str], *, max_length: int,
             batch_size: int) -> float:
    """Percent of `rows` whose text the classifier assigns its class (output i = classes[i])."""
    pred = predict_ids(model, tokenizer, [t for t, _ in rows], max_length=max_length,
                       batch_size=batch_size)
    return 100.0 * sum(classes[p] == c for p, (_, c) in zip(pred, rows)) / max(1, len(rows))


def weighted_f1(model, tokenizer, rows: Rows, classes: Sequence[str], *, max_length: int,
                batch_size: int) -> float:
    """Weighted F1 (x100, the headline metric) of the classifier on `rows`."""
    from sklearn.metrics import f1_score

    pred = predict_ids(model, tokenizer, [t for t, _ in rows], max_length=max_length,
                       batch_size=batch_size)
    return 100.0 * float(f1_score([c for _, c in rows], [classes[p] for p in pred],
                                  average="weighted", zero_division=0))


# What picks the epoch: the labeler wants labels read right (accuracy); a baseline is
# ranked by weighted F1, and on a skewed set accuracy can prefer an epoch that answers
# the majority class for every post over one that learned.
SELECT_BY = {"accuracy": accuracy, "weighted_f1": weighted_f1}


def load_encoder(encoder: str, classes: Sequence[str]):
    """(model, tokenizer): `encoder` with a fresh classification head over `classes`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new classifier head is "missing": expected
    try:
        with explain_load_failure("encoder", encoder, "--encoder"):
            tokenizer = AutoTokenizer.from_pretrained(encoder)
            model = AutoModelForSequenceClassification.from_pretrained(
                encoder, num_labels=len(classes), id2label=dict(enumerate(classes)),
                label2id={c: i for i, c in enumerate(classes)}, ignore_mismatched_sizes=True,
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def fit_classifier(
    encoder: str,
    classes: Sequence[str],
    train: Rows,
    select: Rows,
    *,
    epochs: int,
    max_length: int,
    batch_size: int,
    lr: float,
    freeze_embeddings: bool = False,
    select_by: str = "accuracy",
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    name: str = "",
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[object, object, int, float | None]:
    """Fine-tune `encoder` on the `train` rows; (model, tokenizer, best epoch, its score
    on `select`) with the best epoch's weights loaded.  The score is `select_by` (a
    SELECT_BY key: percent accuracy or weighted F1 x100).  With one epoch there is nothing
    to select between: the score is None and `select` is not read.  `on_epoch(epoch, score)`
    is called after each scored epoch; `name` labels the progress bar."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    classes = list(classes)
    torch.manual_seed(seed)  # before loading: the new head's initialisation is seeded
    model, tokenizer = load_encoder(encoder, classes)
    model.to(device or default_device())
    dev = next(model.parameters()).device
    if freeze_embeddings:
        for p in model.base_model.get_input_embeddings().parameters():
            p.requires_grad = False
    index = {c: i for i, c in enumerate(classes)}
    ids = tokenizer([t for t, _ in train], truncation=True, max_length=max_length)["input_ids"]
    targets = [index[c] for _, c in train]
    lengths = [len(x) for x in ids]
    steps = epochs * math.ceil(len(train) / batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(optim, int(0.06 * steps), steps)
    rng = random.Random(seed)
    best, best_acc, best_epoch = None, -1.0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        bar = tqdm(_batches(lengths, batch_size, rng), desc=f"{name} epoch {epoch}",
                   unit="batch", leave=False, disable=not progress or None)
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
        if epochs == 1:
            break  # nothing to select between
        # no gradients at inference: twice the training batch fits
        acc = SELECT_BY[select_by](model, tokenizer, select, classes, max_length=max_length,
                                   batch_size=batch_size * 2)
        if on_epoch is not None:
            on_epoch(epoch, acc)
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if epochs == 1:
        best_acc, best_epoch = None, 1
    elif best is not None and best_epoch != epochs:
        model.load_state_dict(best)
    model.eval()
    tokenizer.model_max_length = max_length  # a saved folder predicts truncating as trained
    return model, tokenizer, best_epoch, best_acc


def save_classifier(model, tokenizer, dest: str | os.PathLike) -> None:
    """Write a classifier folder so that `dest` is either the old or the new one, whole."""
    dest = Path(dest)
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
