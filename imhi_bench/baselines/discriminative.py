"""The discriminative baseline (MentalRoBERTa in the paper's Table 2): per set, fine-tune a
sequence classifier on train posts, pick the epoch on val, predict the test posts.

* Input: the post read out of the query (`split_post`).  Irf and MultiWD ask one yes/no
  question per row about one aspect of a post, so there the input is the aspect question
  followed by the post (question first: truncation at `max_length` never cuts it).
* Labels: the class of the gold response (`gold_label`).
* Train data: the released train.csv trains and val.csv selects the epoch; where IMHI
  releases only val.csv (Irf, MultiWD) its rows i % 10 < 9 train and i % 10 == 9 select.
  A spec's `train_file` (CSV: post,label and, for several sets, set; optionally question)
  replaces the released data of the sets it has rows for, rows i % 10 == 9 selecting.
  Rows whose post is a released test post are dropped (`train.data.held_out_posts`, as the
  trainer does).
  Sets with neither, or without their test file, are skipped with a note.
* Epoch: the one with the best weighted F1 on the select rows (the ranked metric).
* Floor: each set's provenance holds what always answering its most frequent test class
  scores (`majority_class`) and the classes predicted; a set scored at or under that floor
  is named at the end of the run (`not_learned`): its classifier learned nothing.
* Output: each prediction's "generation" is the label sentence of its class
  (`label_sentence`), so the one scoring pipeline reads it back; the run folder is eval's
  (imhi_results.json and samples_<task>.jsonl, no lm_eval_results.json), and
  `imhi-bench score --predictions RUN_DIR` gives the same numbers.  Explanation quality
  (BART-score) does not apply, and the report's provenance says so.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from imhi_bench.baselines.runner import BaselineRun
from imhi_bench.baselines.spec import BaselineSpec
from imhi_bench.benchmark.data import (
    load_examples,
    load_pairs,
    missing_file_message,
    post_key,
    present_splits,
    read_csv,
    resolve_data_dir,
    split_post,
)
from imhi_bench.benchmark.sets import get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file
from imhi_bench.core.sample import seeded_sample
from imhi_bench.models.identity import library_versions
from imhi_bench.models.loading import explain_load_failure
from imhi_bench.models.options import ModelOptions
from imhi_bench.runs.evaluate import task_data_provenance
from imhi_bench.runs.folder import check_output, sample_record, write_run_folder
from imhi_bench.scoring.labeler.fit import fit_classifier
from imhi_bench.scoring.labeler.load import paper_to_canonical, predict_ids
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.scoring.labels.schema import label_sentence
from imhi_bench.scoring.pipeline import SetInput, score_run
from imhi_bench.tasks.names import task_name
from imhi_bench.train.data import GROUPS, held_out_posts, split_path

FORMAT = "instruction"
ASPECT_SETS = ("Irf", "MultiWD")  # one row per (post, aspect question)
SELECT_EVERY = 10  # without a val file, every 10th row selects the epoch
NO_QUALITY = ("explanation quality (BART-score) does not apply: a discriminative baseline "
              "writes no explanation, its generations are the label sentences of the "
              "predicted classes")

Rows = list[tuple[str, str]]  # (classifier input, class)


@dataclass
class SetData:
    set: str
    train: Rows
    select: Rows
    provenance: dict = field(default_factory=dict)  # where the rows came from, counts


# --------------------------------------------------------------------------------------
# What the classifier reads
# --------------------------------------------------------------------------------------

def classifier_input(set_name: str, post: str, question: str = "") -> str:
    """The post; for Irf and MultiWD the aspect question, then the post."""
    if get_set(set_name).name in ASPECT_SETS and question.strip():
        return f"{question.strip()} {post.strip()}"
    return post.strip()


def query_input(set_name: str, query: str) -> str:
    """The classifier input of a released instruction query."""
    _, post, after = split_post(query)
    return classifier_input(set_name, post, after.split("Question:", 1)[-1])


def _split_select(rows: Rows) -> tuple[Rows, Rows]:
    """(train, select): every SELECT_EVERY-th row selects, by position."""
    return ([r for i, r in enumerate(rows) if i % SELECT_EVERY != SELECT_EVERY - 1],
            [r for i, r in enumerate(rows) if i % SELECT_EVERY == SELECT_EVERY - 1])


# --------------------------------------------------------------------------------------
# Train data: released, or the user's train_file
# --------------------------------------------------------------------------------------

def wanted_sets(items: tuple[str, ...]) -> list[str]:
    """spec.sets -> set names, groups (`imhi`) expanded, in order, once each."""
    names: list[str] = []
    for item in items:
        key = item.strip().lower()
        names += GROUPS[key] if key in GROUPS else [get_set(item).name]
    return list(dict.fromkeys(names))


def released_data(name: str, root: Path, in_test: frozenset[str]) -> SetData | str:
    """The released train/val rows of a set, or why there are none (a note)."""
    s = get_set(name)
    if not s.train_files:
        return (f"IMHI releases no train data for {name}: its paper number came from the "
                f"train split of the original {name} data set; put those posts in a CSV with "
                f"columns post,label,set and pass train_file=PATH")
    # val selects the epoch, so it must be there; a train file the copy lacks (Irf's and
    # MultiWD's, in copies made before they were known) leaves val to train as well
    splits = present_splits(name, FORMAT, root)
    if "val" not in splits:
        return (f"its released train data is missing: put it at "
                f"{root / split_path(name, 'val', FORMAT)} (run `imhi-bench data fetch`), "
                "or pass train_file=PATH")
    files, counts, by_split = {}, {}, {}
    for split in splits:
        rel = split_path(name, split, FORMAT)
        files[rel] = sha256_file(root / rel)
        rows = load_pairs(name, split, FORMAT, root)
        kept = [(i, q, g) for i, (q, g) in enumerate(rows) if post_key(q) not in in_test]
        by_split[split] = [(query_input(name, q), gold_label(name, g, f"{rel} row {i + 1}"))
                           for i, q, g in kept]
        counts[f"{split}_dropped_in_test"] = len(rows) - len(kept)
    if "train" in by_split:
        train, select = by_split["train"], by_split["val"]
        how = "released train.csv trains, val.csv selects the epoch"
    else:
        train, select = _split_select(by_split["val"])
        how = (f"released val.csv only: rows i%{SELECT_EVERY}<{SELECT_EVERY - 1} train, "
               f"i%{SELECT_EVERY}=={SELECT_EVERY - 1} select the epoch")
    return SetData(name, train, select, {"source": "released", "how": how, "files": files,
                                         **counts})


def _post_key(post: str) -> str:
    """`post_key` of a bare post (a train_file's), by wrapping it in the release's shape."""
    return post_key(f"Post: {post} Question:")


def _user_label(name: str, label: str, where: str) -> str:
    s = get_set(name)
    known = {c.lower(): c for c in s.classes}
    known.update({p.lower(): c for p, c in paper_to_canonical(name).items()})
    cls = known.get(label.strip().lower())
    if cls is None:
        raise ImhiError(f"{where}: label {label!r} is not a {s.name} class (use one of "
                        f"{', '.join(s.classes)})")
    return cls


def user_data(path: str, names: list[str], in_test: frozenset[str]) -> dict[str, SetData]:
    """The rows of a user's train_file for the sets in `names`, by set."""
    file = Path(path).expanduser()
    rows = read_csv(file, ("post", "label"))
    has_set = "set" in rows[0]
    if not has_set and len(names) != 1:
        raise ImhiError(f"train_file {file} has no 'set' column: add one naming each row's "
                        "set, or run one set (sets=NAME)")
    grouped: dict[str, Rows] = {}
    dropped: dict[str, int] = {}
    for i, r in enumerate(rows):
        where = f"train_file {file.name} row {i + 1}"
        try:
            name = get_set(r["set"]).name if has_set else names[0]
        except ImhiError as e:
            raise ImhiError(f"{where}: {e}") from None
        if name not in names:
            continue
        cls = _user_label(name, r["label"], where)
        if not r["post"].strip():
            raise ImhiError(f"{where}: the post is empty")
        if _post_key(r["post"]) in in_test:
            dropped[name] = dropped.get(name, 0) + 1
            continue
        grouped.setdefault(name, []).append(
            (classifier_input(name, r["post"], r.get("question", "")), cls))
    digest = sha256_file(file)
    how = (f"train_file: rows i%{SELECT_EVERY}<{SELECT_EVERY - 1} train, "
           f"i%{SELECT_EVERY}=={SELECT_EVERY - 1} select the epoch")
    return {name: SetData(name, *_split_select(labelled),
                          {"source": "train_file", "how": how,
                           "files": {str(file.resolve()): digest},
                           "dropped_in_test": dropped.get(name, 0)})
            for name, labelled in grouped.items()}


def check_encoder(encoder: str) -> None:
    """Fail now, in one line, if the encoder's config or tokenizer cannot be loaded."""
    from transformers import AutoConfig, AutoTokenizer

    with explain_load_failure("encoder", encoder, "encoder=PATH_OR_HUB_ID"):
        AutoConfig.from_pretrained(encoder)
        AutoTokenizer.from_pretrained(encoder)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------

def fit_and_predict(spec: BaselineSpec, data: SetData, root: Path,
                    log) -> tuple[SetInput, list[dict], dict]:
    """Fine-tune on `data`, predict the set's test posts: (the SetInput to score, lm-eval
    shaped per-sample records, the set's fine-tuning provenance)."""
    name = data.set
    classes = list(get_set(name).classes)
    train = seeded_sample(data.train, spec.max_train, spec.seed)
    log(f"{name}: fine-tuning {spec.encoder} on {len(train)} posts "
        f"({len(data.select)} select the epoch)")

    def on_epoch(epoch: int, f1: float) -> None:
        log(f"{name}: epoch {epoch}/{spec.epochs} val weighted F1 {f1:.2f}")

    t0 = time.perf_counter()
    # the epoch is picked on the ranked metric: on a skewed set accuracy can prefer an
    # epoch that answers the majority class for every post
    model, tokenizer, best_epoch, best_f1 = fit_classifier(
        spec.encoder, classes, train, data.select, epochs=spec.epochs,
        max_length=spec.max_length, batch_size=spec.batch_size, lr=spec.learning_rate,
        select_by="weighted_f1", seed=spec.seed, name=name, on_epoch=on_epoch)
    t1 = time.perf_counter()
    examples = load_examples(name, FORMAT, root)
    shown = examples[: spec.limit] if spec.limit else examples
    texts = [query_input(name, e.query) for e in shown]
    ids = predict_ids(model, tokenizer, texts, max_length=spec.max_length,
                      batch_size=spec.batch_size * 2, progress=True)
    del model
    gens = [label_sentence(name, classes[i]) for i in ids]
    rows = [(e.doc_id, e.gold, g, t) for e, g, t in zip(shown, gens, texts, strict=True)]
    logged = [{"doc_id": e.doc_id,
               "doc": {"doc_id": e.doc_id, "set": name, "format": FORMAT, "query": e.query,
                       "gold": e.gold},
               "target": e.gold, "arguments": [(t,)], "resps": [[g]], "filtered_resps": [g]}
              for e, g, t in zip(shown, gens, texts, strict=True)]
    task = task_name(name, FORMAT)
    inp = SetInput(rows, task_data_provenance(task, root, len(shown), len(examples)),
                   where=task)
    prov = {**data.provenance, "train_rows": len(train), "val_rows": len(data.select),
            "best_epoch": best_epoch,
            "val_weighted_f1": None if best_f1 is None else round(best_f1, 2),
            "predicted": dict(Counter(classes[i] for i in ids).most_common()),
            "majority_class": majority_class(name, [e.gold for e in shown]),
            "train_seconds": round(t1 - t0, 1),
            "predict_seconds": round(time.perf_counter() - t1, 1)}
    return inp, logged, prov


def majority_class(set_name: str, golds: list[str]) -> dict:
    """What always answering the test set's most frequent class scores: the floor a
    classifier that learned anything is above.  {"class", "weighted_f1"} (x100)."""
    from sklearn.metrics import f1_score

    labels = [gold_label(set_name, g, "test") for g in golds]
    top = Counter(labels).most_common(1)[0][0]
    return {"class": top, "weighted_f1": round(100.0 * float(f1_score(
        labels, [top] * len(labels), average="weighted", zero_division=0)), 2)}


def not_learned(report: dict, tuned: dict[str, dict]) -> list[str]:
    """One line per set whose weighted F1 is not above its majority class."""
    lines = []
    for name, prov in tuned.items():
        f1 = report["sets"].get(name, {}).get("weighted_f1")
        floor = prov["majority_class"]
        if f1 is not None and f1 <= floor["weighted_f1"]:
            lines.append(
                f"{name}: weighted F1 {f1:.2f} is not above always answering "
                f"{floor['class']!r} ({floor['weighted_f1']:.2f}): the classifier did not "
                "learn this set; raise epochs= or learning_rate= (or max_train=, if set)")
    return lines


def plan_sets(spec: BaselineSpec, root: Path) -> tuple[dict[str, SetData], list[str]]:
    """The train data of each set to run, and a note for each set skipped."""
    names = wanted_sets(spec.sets)
    in_test = held_out_posts(root)
    user = user_data(spec.train_file, names, in_test) if spec.train_file else {}
    plan: dict[str, SetData] = {}
    notes: list[str] = []
    for name in names:
        s = get_set(name)
        if not (root / s.path(FORMAT)).is_file():
            notes.append(f"skipping {name}: {missing_file_message(s, FORMAT, root)}")
            continue
        data = user[name] if name in user else released_data(name, root, in_test)
        if isinstance(data, str):
            notes.append(f"skipping {name}: {data}")
        elif not data.train:
            notes.append(f"skipping {name}: no train rows are left after dropping those "
                         "whose post is in a test set")
        else:
            plan[name] = data
    return plan, notes


def run_discriminative(spec: BaselineSpec, *, output: Path, data_dir: str | None = None,
                       cache_dir: str | None = None, yes: bool = False, log=print) -> BaselineRun:
    """Fine-tune, predict, score and write the run folder of a discriminative spec (nothing
    is generated or sent to an API: `cache_dir` and `yes` do not apply)."""
    del cache_dir, yes
    run_dir = Path(output).expanduser().resolve()
    check_output(run_dir)
    wanted_sets(spec.sets)  # a bad sets= is named before the (gated) encoder is looked up
    check_encoder(spec.encoder)
    root = resolve_data_dir(data_dir).resolve()
    plan, notes = plan_sets(spec, root)
    for note in notes:
        log(note)
    if not plan:
        raise ImhiError(f"no set of {','.join(spec.sets)} can run: each lacks its test file or "
                        "train data (see the notes above)")
    if spec.limit:
        log(f"limit={spec.limit}: scores on a subset do not compare to the paper's.")
    t0 = time.perf_counter()
    inputs, logged, tuned = {}, {}, {}
    for name, data in plan.items():
        inputs[name], logged[name], tuned[name] = fit_and_predict(spec, data, root, log)
    provenance = {
        "source": "baseline",
        "name": spec.name,
        "run_dir": str(run_dir),
        "runner": spec.runner,
        "model": spec.encoder,
        # score_run fills these in; named here so the keys keep their place in the JSON
        "seed": None,
        "limit": spec.limit,
        "bootstrap": None,
        "quality": None,
        "quality_note": NO_QUALITY,
        "baseline": spec.to_dict(),
        "fine_tuning": tuned,
        "versions": library_versions(ModelOptions(spec.encoder)),
        "sets": None,
        "skipped": notes,
        "timing": {"wall_seconds": round(time.perf_counter() - t0, 3)},
    }
    scored = score_run(inputs, provenance, seed=spec.seed)
    for line in not_learned(scored.report, tuned):
        log(line)
    records = {task_name(name, FORMAT): [sample_record(x, s) for x, s in
                                         zip(logged[name], scored.samples[name], strict=True)]
               for name in inputs}
    write_run_folder(run_dir, lm_eval_results=None, records=records, report=scored.report)
    return BaselineRun(run_dir, scored.report, scored.samples)

