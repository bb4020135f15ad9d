"""How a classifier labeler reads what the rules read (issue 16's measurement).

Two kinds of text, each with the label it states known:
* the released gold explanations of a set's test file with their label sentence removed
  ("Reasoning: ..."), stating their gold class (how `test_labels` measures the rules);
* the same explanations after an option list of the set's classes that chooses none
  ("A. Work B. Family issues ...", the stated class never first), a shape models write: the
  list is not a claim, so every reader should read these as the plain explanations (the
  classifier reads them without the list, `labeler_text`; read whole, it leans to the
  option written first);
* for DR, ChatGPT's and GPT-3's free-form answers in `human_evaluation/DR_annotation`,
  stating the annotated label (in `chatgpt_false_data`, ChatGPT's wrong answers, its
  opposite).

Per text kind: the share each reader gets right (the rules, the classifier alone, explicit
answers first as `--labeler` reads), the share the classifier alone and explicit-first
agree with the rules, and how many labels the rules' explicit answers decided.  Without a
labeler, the rules' share alone (README's figures for the rules come from that).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from imhi_bench.benchmark.data import fetch_command, read_csv, resolve_data_dir, test_file
from imhi_bench.benchmark.sets import GOLD_COLUMN, QUERY_COLUMN, SETS, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.labeler.explicit import read_labels
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.scoring.labels.reader import explanation, extract_label
from imhi_bench.scoring.meta_eval import ANNOTATION_DIR, ASPECTS, POST_COLUMN

# DR_annotation files whose answers state the opposite of the annotated label
WRONG_ANSWERS = frozenset({"chatgpt_false_data"})


@dataclass(frozen=True)
class Texts:
    name: str  # e.g. "DR label-stripped", "DR_annotation/chatgpt_data"
    set: str
    texts: list[str]
    stated: list[str]  # the class each text states


def label_stripped(set_name: str, data_dir: str | os.PathLike | None = None) -> Texts:
    """The set's test gold explanations without their label sentence, as "Reasoning: ..."."""
    s = get_set(set_name)
    path = test_file(s.name, "instruction", data_dir)
    rows = read_csv(path, (QUERY_COLUMN, GOLD_COLUMN))
    stated = [gold_label(s.name, r[GOLD_COLUMN], f"{path.name} row {i + 1}")
              for i, r in enumerate(rows)]
    texts = ["Reasoning: " + explanation(r[GOLD_COLUMN]) for r in rows]
    return Texts(f"{s.name} label-stripped", s.name, texts, stated)


def after_options(texts: Texts) -> Texts:
    """`texts` each after a written-out list of the set's classes, starting with the class
    after the one it states (in the set's order), so the first option is never its class."""
    classes = list(SETS[texts.set].classes)

    def listed(stated: str) -> str:
        k = classes.index(stated) + 1
        order = classes[k:] + classes[:k]
        return " ".join(f"{chr(ord('A') + i)}. {c[0].upper() + c[1:]}"
                        for i, c in enumerate(order))

    return Texts(f"{texts.name} after an option list", texts.set,
                 [f"{listed(c)}\n{t}" for t, c in zip(texts.texts, texts.stated)], texts.stated)


def dr_annotation(data_dir: str | os.PathLike | None = None) -> list[Texts]:
    """The free-form DR answers of `human_evaluation/DR_annotation/*.csv`, files in name
    order; none when the folder is not there."""
    folder = resolve_data_dir(data_dir) / ANNOTATION_DIR
    out = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        rows = read_csv(path, (POST_COLUMN, "label"))
        fixed = {POST_COLUMN, "label", *ASPECTS}
        cols = [c for c in rows[0] if c.strip() and c not in fixed] if rows else []
        if len(cols) != 1:
            raise ImhiError(f"{path} should have exactly one response column besides "
                            f"{', '.join(sorted(fixed))}; found {cols or 'none'}")
        flip = path.stem in WRONG_ANSWERS
        stated = []
        for i, r in enumerate(rows, start=1):
            if r["label"].strip() not in ("0", "1"):
                raise ImhiError(f"{path.name} row {i}: label must be 0 or 1, not {r['label']!r}")
            stated.append("yes" if (r["label"].strip() == "1") != flip else "no")
        out.append(Texts(f"{ANNOTATION_DIR.rsplit('/', 1)[-1]}/{path.stem}", "DR",
                         [r[cols[0]] for r in rows], stated))
    return out


def _pct(a: Sequence, b: Sequence) -> float:
    return round(100.0 * sum(x is not None and x == y for x, y in zip(a, b)) / len(a), 2)


def measure(labeler, texts: Texts) -> dict:
    """One row of the measurement (percentages, 2 decimals); with `labeler` None, the rules'
    share only."""
    rules = [extract_label(texts.set, t) for t in texts.texts]
    if labeler is None:
        return {"set": texts.set, "n": len(texts.texts), "rules": _pct(rules, texts.stated)}
    alone = list(labeler.predict(texts.set, texts.texts))
    first = read_labels(labeler, texts.set, texts.texts)
    return {
        "set": texts.set,
        "n": len(texts.texts),
        "rules": _pct(rules, texts.stated),
        "classifier": _pct(alone, texts.stated),
        "explicit_first": _pct(first.labels, texts.stated),
        "classifier_vs_rules": _pct(alone, rules),
        "explicit_first_vs_rules": _pct(first.labels, rules),
        "rules_decided": first.rules_decided,
    }


def agreement(labeler, sets: Sequence[str] | None = None,
              data_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """Text kind -> `measure` row, for each set the labeler covers (or `sets`).  With
    `labeler` None, the rules alone, by default on every set whose test file is present."""
    root = resolve_data_dir(data_dir)  # once, for every file read below
    if sets:
        names = [get_set(n).name for n in sets]
    elif labeler is not None:
        names = list(labeler.sets)
    else:
        names = [s.name for s in SETS.values() if (root / s.path("instruction")).is_file()]
        if not names:
            raise ImhiError(f"no IMHI test file in {root}: run `{fetch_command(root)}`, or "
                            "point --data-dir at a copy of the release")
    out = {}
    for name in names:
        if labeler is not None and name not in labeler.sets:
            raise ImhiError(f"labeler {getattr(labeler, 'root', labeler.name)} has no "
                            f"classifier for {name}")
        stripped = label_stripped(name, root)
        kinds = [stripped, after_options(stripped)] + (dr_annotation(root) if name == "DR"
                                                       else [])
        for texts in kinds:
            if texts.texts:
                out[texts.name] = measure(labeler, texts)
    return out
