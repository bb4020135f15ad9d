"""IMHI as lm-evaluation-harness tasks: names, the hooks the task YAMLs call, and the YAMLs.

Every task is `imhi_<slug>` (instruction format), `imhi_completion_<slug>` or
`imhi_expert_<slug>`, with the slugs of `imhi_bench.benchmark.sets`.  The YAML files in `tasks_yaml/`
are generated from this module (`scripts/generate_tasks_yaml.py`; a test keeps them in step),
so set facts live only in `sets.py`.  The YAMLs reach this code through a small `utils.py`
shim beside them, which is how lm-eval resolves `!function` tags:

- `load_dataset` (custom_dataset): rows through `imhi_bench.benchmark.data.load_examples`, so the data
  dir is `$IMHI_DATA_DIR` (or the `imhi_data_dir` task metadata), never the working
  directory, and a missing file raises the same guidance as `imhi-bench data check`;
- `process_results`: reads the label of one generation with `imhi_bench.scoring.labels`;
- `weighted_f1`, `macro_f1`, `count`: corpus-level aggregations through `imhi_bench.scoring.metrics`.

Metrics are in percent, as the paper and the score JSON report them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

from imhi_bench.benchmark.sets import FORMATS, SETS, UNSEEN_SETS, ImhiSet, get_set
from imhi_bench.core.errors import ImhiError

TASK_VERSION = 1.0
MAX_GEN_TOKS = 256
# lm-eval's default stop string is "\n\n", which would cut an explanation after its first
# paragraph (340 released gold responses have more than one).  None of these occurs in any
# released gold response; they catch a base model that goes on to write the next prompt.
# Four at most: the OpenAI API accepts no more.
STOP_STRINGS: tuple[str, ...] = ("\n\n\n", "\nConsider this post:", "\nPost:", "\nQuestion:")

# Format -> task-name prefix.
PREFIX: dict[str, str] = {
    "instruction": "imhi",
    "completion": "imhi_completion",
    "expert": "imhi_expert",
}

# Group -> (format, member sets).  imhi_unseen: the paper's IMHI-general held-out tasks.
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "imhi": ("instruction", tuple(SETS)),
    "imhi_completion": ("completion", tuple(SETS)),
    "imhi_expert": ("expert", tuple(SETS)),
    "imhi_unseen": ("instruction", UNSEEN_SETS),
}

# Per-sample metric -> aggregation (shim function name or lm-eval built-in).
METRICS: tuple[tuple[str, str], ...] = (
    ("weighted_f1", "weighted_f1"),
    ("accuracy", "mean"),
    ("macro_f1", "macro_f1"),
    ("unparseable", "count"),
)
GROUP_METRICS = ("weighted_f1", "accuracy", "macro_f1")

DATA_DIR_METADATA = "imhi_data_dir"


def task_name(set_name: str, fmt: str = "instruction") -> str:
    if fmt not in PREFIX:
        raise ImhiError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return f"{PREFIX[fmt]}_{get_set(set_name).slug}"


def all_tasks() -> dict[str, tuple[ImhiSet, str]]:
    """Every task name -> (set, format)."""
    return {task_name(s.name, fmt): (s, fmt) for fmt in PREFIX for s in SETS.values()}


def parse_task(name: str) -> tuple[ImhiSet, str] | None:
    """(set, format) of a task name, or None if it is not an IMHI task."""
    return all_tasks().get(name)


def group_tasks(group: str) -> list[str]:
    fmt, sets = GROUPS[group]
    return [task_name(s, fmt) for s in sets]


# --------------------------------------------------------------------------------------
# Hooks called by lm-eval through tasks_yaml/utils.py
# --------------------------------------------------------------------------------------

def load_dataset(imhi_set: str, imhi_format: str, **metadata):
    """custom_dataset hook: the set's released test file as a one-split DatasetDict.

    lm-eval passes the task metadata (and, from its CLI, the model args) as keyword
    arguments too; only `imhi_data_dir` is read from them."""
    import datasets

    from imhi_bench.benchmark.data import load_examples

    data_dir = metadata.get(DATA_DIR_METADATA) or None
    examples = load_examples(imhi_set, imhi_format, data_dir)
    rows = {
        "doc_id": [e.doc_id for e in examples],
        "set": [e.set for e in examples],
        "format": [e.fmt for e in examples],
        "query": [e.query for e in examples],
        "gold": [e.gold for e in examples],
    }
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


def process_results(doc: dict, results: list[str]) -> dict:
    """Per-sample metrics: (gold, predicted) pairs for the F1s, 0/1 for the rest."""
    from imhi_bench.scoring.labels import extract_label, gold_label

    generation = results[0] if results else ""
    gold = gold_label(doc["set"], doc["gold"], where=f"{doc['set']} row {doc['doc_id'] + 1}")
    pred = extract_label(doc["set"], generation)
    return {
        "weighted_f1": (gold, pred),
        "accuracy": float(pred == gold),
        "macro_f1": (gold, pred),
        "unparseable": int(pred is None),
    }


def _f1(items: Iterable[tuple[str, str | None]], average: str) -> float:
    m = _scores(tuple(tuple(x) for x in items))
    return m.weighted_f1 if average == "weighted" else m.macro_f1


@functools.lru_cache(maxsize=4)
def _scores(pairs: tuple[tuple[str, str | None], ...]):
    """One metrics computation serves both F1 aggregations of a task."""
    from imhi_bench.scoring.metrics import score_set

    return score_set([g for g, _ in pairs], [p for _, p in pairs], n_boot=0)


def weighted_f1(items: Iterable[tuple[str, str | None]]) -> float:
    """Weighted F1 (percent) over the gold classes; unparseable counts as wrong."""
    return _f1(items, "weighted")


def macro_f1(items: Iterable[tuple[str, str | None]]) -> float:
    return _f1(items, "macro")


def count(items: Iterable[int]) -> int:
    return int(sum(items))


# --------------------------------------------------------------------------------------
# The YAML files
# --------------------------------------------------------------------------------------

HEADER = (
    "# Generated by scripts/generate_tasks_yaml.py from imhi_bench/sets.py and\n"
    "# imhi_bench/tasks.py: do not edit by hand.\n"
)

SHIM = HEADER + '''"""IMHI task hooks: lm-eval resolves `!function utils.<name>` here."""

from imhi_bench.tasks.lm_tasks import (  # noqa: F401
    count,
    load_dataset,
    macro_f1,
    process_results,
    weighted_f1,
)
'''


def _q(text: str) -> str:
    """A YAML double-quoted scalar."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{out}"'


def _template() -> str:
    until = "\n".join(f"    - {_q(s)}" for s in STOP_STRINGS)
    metrics = "\n".join(
        f"  - metric: {m}\n"
        f"    aggregation: {'!function utils.' + agg if agg != 'mean' else agg}\n"
        f"    higher_is_better: {'false' if m == 'unparseable' else 'true'}"
        for m, agg in METRICS
    )
    return (
        HEADER
        + "# Shared settings of every IMHI task (included by imhi_*.yaml).\n"
        "dataset_path: imhi\n"
        "custom_dataset: !function utils.load_dataset\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "# plain field names: lm-eval reads them straight from the doc (a Jinja template\n"
        "# would be compiled again for every sample)\n"
        "doc_to_text: query\n"
        "doc_to_target: gold\n"
        "process_results: !function utils.process_results\n"
        "generation_kwargs:\n"
        f"  until:\n{until}\n"
        "  do_sample: false\n"
        "  temperature: 0.0\n"
        f"  max_gen_toks: {MAX_GEN_TOKS}\n"
        f"metric_list:\n{metrics}\n"
        "metadata:\n"
        f"  version: {TASK_VERSION}\n"
    )


def _task_yaml(s: ImhiSet, fmt: str) -> str:
    return (
        HEADER
        + f"# {s.name}: {s.task} ({fmt} format). {s.description}\n"
        "include: _imhi_template_yaml\n"
        f"task: {task_name(s.name, fmt)}\n"
        "dataset_kwargs:\n"
        f"  imhi_set: {_q(s.name)}\n"
        f"  imhi_format: {fmt}\n"
    )


def _group_yaml(group: str) -> str:
    fmt, _ = GROUPS[group]
    members = "\n".join(f"  - {t}" for t in group_tasks(group))
    agg = "\n".join(
        f"  - metric: {m}\n    aggregation: mean\n    weight_by_size: false"
        for m in GROUP_METRICS
    )
    what = "the paper's held-out IMHI-general sets" if group == "imhi_unseen" else "every set"
    return (
        HEADER
        + f"# {what}, {fmt} format; the mean over sets is unweighted, as the paper averages.\n"
        f"group: {group}\n"
        f"task:\n{members}\n"
        f"aggregate_metric_list:\n{agg}\n"
        "metadata:\n"
        f"  version: {TASK_VERSION}\n"
    )


def render_task_files() -> dict[str, str]:
    """File name -> content of everything in `tasks_yaml/`."""
    files = {"utils.py": SHIM, "_imhi_template_yaml": _template()}
    for name, (s, fmt) in all_tasks().items():
        files[f"{name}.yaml"] = _task_yaml(s, fmt)
    for group in GROUPS:
        files[f"_{group}_group.yaml"] = _group_yaml(group)
    return files


def task_dir(root: str | os.PathLike) -> Path:
    """The rendered task files in `root/tasks_yaml/<content hash>/`, written once and
    reused by every later run (cheaper than writing and deleting them each time)."""
    import hashlib
    import json
    import tempfile

    files = render_task_files()
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(root) / "tasks_yaml"
    dest = base / digest
    if (dest / "utils.py").is_file():
        return dest
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=base))
    write_task_files(tmp)
    try:
        tmp.rename(dest)
    except OSError:  # another run got there first: its copy is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def write_task_files(dest: str | os.PathLike) -> list[str]:
    """Write the task files into `dest` (created); returns the names written."""
    from imhi_bench.core.fileio import atomic_write_text

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files = render_task_files()
    for name, text in files.items():
        atomic_write_text(dest / name, text)
    return sorted(files)
