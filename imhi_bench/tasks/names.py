"""IMHI task names and the settings every task shares.

Every task is `imhi_<slug>` (instruction format), `imhi_completion_<slug>` or
`imhi_expert_<slug>`, with the slugs of `imhi_bench.benchmark.sets`; the groups are
`GROUPS`.  `hooks` holds what lm-eval calls, `render` writes the YAMLs of `tasks_yaml/`.
"""

from __future__ import annotations

from imhi_bench.benchmark.sets import FORMATS, SETS, UNSEEN_SETS, ImhiSet, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.protocol import STOP_STRINGS, TASK_VERSION  # noqa: F401 (re-exported)

MAX_GEN_TOKS = 256  # plain lm_eval's limit; `imhi-bench eval` sets the protocol's per set

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

# Task metadata keys imhi-bench's runner (or `lm_eval --metadata`) may pass.
DATA_DIR_METADATA = "imhi_data_dir"  # the IMHI data folder (else $IMHI_DATA_DIR)
BART_MODEL_METADATA = "imhi_bart_model"  # bart_score's BART (else $IMHI_BART_MODEL), or "none"
BART_CHECKPOINT_METADATA = "imhi_bart_checkpoint"  # a state dict loaded into that BART
BART_MODEL_ENV = "IMHI_BART_MODEL"
BART_OFF = "none"  # as the BART model: bart_score is not computed (its value is NaN)


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
