"""Which lm-eval tasks a run asks for: `--tasks` (groups, tasks or set names) -> the leaf
tasks, what lm-eval is asked to build, and notes on sets skipped for lack of data.

Sets whose files are absent (CLP was never released; a copy may lack others) are skipped
with a note saying where to put them; a task asked for by name fails instead."""

from __future__ import annotations

from dataclasses import dataclass

from imhi_bench.benchmark.sets import SET_NAMES, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.models import registry


@dataclass
class TaskSelection:
    tasks: list[str]  # leaf tasks, in order
    specs: list[str]  # what lm-eval is asked for: whole groups where possible, else tasks
    notes: list[str]  # sets skipped for lack of data


def select_tasks(text: str | None, backend: str, data_dir: str | None = None) -> TaskSelection:
    from imhi_bench.benchmark.data import missing_file_message, resolve_data_dir
    from imhi_bench.tasks.names import GROUPS, group_tasks, parse_task, task_name

    fmt = registry.backend(backend).default_format
    if text is None:  # not given; an empty --tasks '' is refused below, not defaulted
        text = "imhi" if fmt == "instruction" else "imhi_completion"
    root = resolve_data_dir(data_dir)
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise ImhiError("--tasks is empty: pass e.g. imhi, imhi_unseen or imhi_dr,imhi_sad")

    def present(task: str) -> bool:
        s, f = parse_task(task)
        return (root / s.path(f)).is_file()

    tasks: list[str] = []
    specs: list[str] = []
    notes: list[str] = []
    for item in items:
        if item in GROUPS:
            members = group_tasks(item)
            have = [t for t in members if present(t)]
            for t in members:
                if t not in have:
                    s, f = parse_task(t)
                    notes.append(f"skipping {t}: {missing_file_message(s, f, root)}")
            if not have:
                raise ImhiError(
                    f"no data for any task of {item} under {root}: run `imhi-bench data "
                    "fetch`, or point --data-dir / $IMHI_DATA_DIR at your copy"
                )
            tasks += have
            specs += [item] if have == members else have
            continue
        parsed = parse_task(item)
        if parsed is None:
            try:
                parsed = (get_set(item), fmt)
                item = task_name(parsed[0].name, fmt)
            except ImhiError:
                raise ImhiError(unknown_task(item)) from None
        s, f = parsed
        if not present(item):
            raise ImhiError(missing_file_message(s, f, root))
        tasks.append(item)
        specs.append(item)

    # A task reached twice (imhi + imhi_dr, or imhi + imhi_unseen) runs once; lm-eval
    # refuses a task under two groups, so such groups go in as their tasks.
    unique = list(dict.fromkeys(tasks))
    if len(unique) < len(tasks):
        specs = unique
    by_set: dict[str, str] = {}
    for t in unique:
        s, _ = parse_task(t)
        if s.name in by_set:
            raise ImhiError(
                f"{s.name} is selected twice ({by_set[s.name]} and {t}): a results file holds "
                "one score per set, so run the formats separately"
            )
        by_set[s.name] = t
    return TaskSelection(unique, list(dict.fromkeys(specs)), notes)


def unknown_task(item: str) -> str:
    """The message for a name that is no group, task or set: the nearest accepted name,
    then every accepted form spelled out."""
    import difflib

    from imhi_bench.tasks.names import GROUPS, all_tasks

    known = {k.lower(): k for k in (*GROUPS, *all_tasks(), *SET_NAMES)}
    close = difflib.get_close_matches(item.lower(), tuple(known), n=1, cutoff=0.6)
    near = f" (did you mean {known[close[0]]}?)" if close else ""
    return (f"unknown task {item!r}{near}: use a group ({', '.join(GROUPS)}), a set name "
            f"({', '.join(SET_NAMES)}), or a task such as imhi_dr, imhi_completion_dr or "
            "imhi_expert_dr (the set's name in lower case, t-sid as tsid)")
