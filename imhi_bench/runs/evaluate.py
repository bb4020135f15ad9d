"""`imhi-bench eval`: run a model on IMHI tasks through lm-eval and write a run folder.

Flow of `run_eval`:

1. check everything that needs no model (tasks, data files, model/adapter folders, API
   reachability and key), so bad input fails in seconds with one line;
2. render the task YAMLs from `imhi_bench.tasks.lm_tasks` (into the cache dir, once per version) and
   load the selected tasks with an lm-eval `TaskManager` over them (the data dir goes in as
   task metadata);
3. build the backend's lm-eval model (`imhi_bench.models.backends.model_args`), wrapped in the
   generation cache so a re-run after an interruption regenerates nothing already made;
4. `lm_eval.evaluator.evaluate` runs the requests (one progress bar over all of them);
5. label every generation and score each set through `imhi_bench.scoring.pipeline`, the same code
   `imhi-bench score` uses, then write the run folder:

       lm_eval_results.json     lm-eval's results (per-task metrics, configs, versions)
       samples_<task>.jsonl     lm-eval's per-sample records + prompt, generation, gold,
                                gold_label, label, correct
       imhi_results.json        the `score --json` schema, with full provenance

   The folder is assembled beside the target and renamed into place at the end, so a
   failed run leaves no partial results.

Sets whose files are absent (SWMH and CLP are not redistributed) are skipped from a group
with a note saying where to put them; a task asked for by name fails instead.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from imhi_bench.benchmark.sets import SET_NAMES, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.models.backends import ModelOptions
from imhi_bench.scoring.pipeline import RULES

RESULTS_FILE = "imhi_results.json"
LM_EVAL_RESULTS_FILE = "lm_eval_results.json"
SAMPLES_GLOB = "samples_*.jsonl"


@dataclass
class EvalOptions:
    model: ModelOptions
    tasks: str | None = None  # comma list of groups, tasks or set names; None: by backend
    limit: int | None = None
    max_new_tokens: int | None = None  # None: the tasks' 256
    chat_template: bool | None = None  # None: use the tokenizer's template if it has one
    system_prompt: str | None = None
    seed: int = 0
    output: str | None = None
    name: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    bootstrap: int = 1000
    quality: object | None = None  # quality.QualityConfig: --quality / --labeler


@dataclass
class EvalRun:
    run_dir: Path
    report: dict
    samples: dict  # set name -> [scoring.Sample]
    lm_eval_results: dict
    records: dict = field(default_factory=dict)  # task -> per-sample JSONL records
    notes: list[str] = field(default_factory=list)
    reused: int = 0
    generated: int = 0
    generate_seconds: float | None = None  # time inside model.generate (hf backends)


# --------------------------------------------------------------------------------------
# Task selection
# --------------------------------------------------------------------------------------

@dataclass
class TaskSelection:
    tasks: list[str]  # leaf tasks, in order
    specs: list[str]  # what lm-eval is asked for: whole groups where possible, else tasks
    notes: list[str]  # sets skipped for lack of data


def default_format(backend: str) -> str:
    """Encoder-decoder models (MentalBART, MentalT5) were trained on the completion format."""
    return "completion" if backend == "hf-seq2seq" else "instruction"


def select_tasks(text: str | None, backend: str, data_dir: str | None = None) -> TaskSelection:
    from imhi_bench.benchmark.data import missing_file_message, resolve_data_dir
    from imhi_bench.tasks.lm_tasks import GROUPS, PREFIX, group_tasks, parse_task, task_name

    fmt = default_format(backend)
    text = text or ("imhi" if fmt == "instruction" else "imhi_completion")
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
                raise ImhiError(
                    f"unknown task {item!r}: use a group ({', '.join(GROUPS)}), a task "
                    f"{'|'.join(PREFIX.values())}_<set>, or a set name "
                    f"({' '.join(SET_NAMES)})"
                ) from None
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


# --------------------------------------------------------------------------------------
# The run folder
# --------------------------------------------------------------------------------------

def default_name(opts: EvalOptions) -> str:
    base = Path(opts.model.model.rstrip("/")).name or "model"
    if opts.model.adapter:
        base += "+" + Path(opts.model.adapter.rstrip("/")).name
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return re.sub(r"[^\w.+-]+", "_", f"{base}-{opts.model.backend}-{stamp}")


def check_output(path: Path) -> None:
    """A run may replace an earlier run folder, never a folder holding anything else."""
    if path.exists() and (not path.is_dir() or (any(path.iterdir())
                                                and not (path / RESULTS_FILE).is_file())):
        raise ImhiError(f"--output {path} exists and is not an imhi-bench run folder: pass a "
                        "new folder (a previous run folder is replaced)")


def _publish(staging: Path, dest: Path) -> None:
    """Move the finished folder into place; an earlier run folder there is replaced."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
    staging.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _jsonable(obj):
    from lm_eval.utils import handle_non_serializable

    return json.loads(json.dumps(obj, default=handle_non_serializable, ensure_ascii=False))


def _sample_record(sample: dict, scored) -> dict:
    """lm-eval's per-sample record, serialised as its EvaluationTracker writes it, plus the
    fields a reader wants without knowing lm-eval's layout."""
    rec = dict(sample)
    rec["arguments"] = {
        f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)}
        for i, arg in enumerate(sample["arguments"])
    }
    rec["target"] = str(sample["target"])
    rec.update(scored.to_json())
    rec["format"] = sample["doc"]["format"]
    return rec


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

@contextmanager
def _quiet_libraries():
    """lm-eval and transformers log a lot at INFO/WARNING; the CLI prints what matters."""
    names = ("lm_eval", "transformers", "datasets", "accelerate", "peft", "httpx", "openai")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        import transformers

        tv = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        tv = None
    try:
        yield
    finally:
        for n, lvl in saved.items():
            logging.getLogger(n).setLevel(lvl)
        if tv is not None:
            transformers.logging.set_verbosity(tv)


def load_model(mopts: ModelOptions):
    """The lm-eval model object of the backend; loading errors become one line."""
    import importlib

    import lm_eval.models  # noqa: F401  (registers lm-eval's own model names, e.g. vllm)
    from lm_eval.api.registry import get_model

    from imhi_bench.models.backends import is_api, model_args

    # registers imhi-hf or imhi-openai-*; only the one needed (openai is slow to import)
    importlib.import_module("imhi_bench.models.openai" if is_api(mopts) else "imhi_bench.models.hf")

    name, args = model_args(mopts)
    try:
        return get_model(name).create_from_arg_obj(args)
    except ImhiError:
        raise
    except (OSError, ValueError, RuntimeError, ImportError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        what = f"{mopts.model}" + (f" with adapter {mopts.adapter}" if mopts.adapter else "")
        raise ImhiError(f"cannot load model {what} ({mopts.backend} backend): {first}") from None


def _use_chat_template(opts: EvalOptions, lm) -> bool:
    backend = opts.model.backend
    if backend == "openai-chat":
        if opts.chat_template is False:
            raise ImhiError("--no-chat-template does not apply to openai-chat, which sends "
                            "messages: use --backend openai-completions for plain prompts")
        return True
    if backend == "openai-completions":
        if opts.chat_template:
            raise ImhiError("openai-completions sends plain prompts: use --backend "
                            "openai-chat to send messages")
        return False
    has = bool(getattr(getattr(lm, "tokenizer", None), "chat_template", None))
    if opts.chat_template and not has:
        raise ImhiError(f"--chat-template: {opts.model.model} has no chat template in its "
                        "tokenizer config; drop the flag to send the prompts as they are")
    return has if opts.chat_template is None else bool(opts.chat_template)


def _evaluate(lm, loaded: dict, opts: EvalOptions, apply_chat: bool) -> dict:
    """What lm_eval.simple_evaluate does for generate-only tasks, minus its collection of
    environment details (a second of subprocesses) and hub lookups."""
    import random

    import numpy as np
    from lm_eval.evaluator import evaluate
    from lm_eval.utils import set_torch_seed

    random.seed(opts.seed)
    np.random.seed(opts.seed)
    set_torch_seed(opts.seed)
    for task in loaded["tasks"].values():
        if opts.max_new_tokens:
            task.set_config(key="generation_kwargs",
                            value={"max_gen_toks": int(opts.max_new_tokens)}, update=True)
        task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=opts.seed)
    return evaluate(
        lm=lm, task_dict=loaded, limit=opts.limit, bootstrap_iters=0, log_samples=True,
        system_instruction=opts.system_prompt, apply_chat_template=apply_chat,
        fewshot_as_multiturn=False,
    )


def run_eval(opts: EvalOptions, log=print) -> EvalRun:
    """Run, score and write the run folder; `log` gets the notes worth showing a user."""
    from imhi_bench.benchmark.data import resolve_data_dir
    from imhi_bench.models import backends

    if opts.limit is not None and opts.limit < 1:
        raise ImhiError("--limit must be a positive number of samples per task")
    if opts.max_new_tokens is not None and opts.max_new_tokens < 1:
        raise ImhiError("--max-new-tokens must be at least 1")
    selection = select_tasks(opts.tasks, opts.model.backend, opts.data_dir)
    opts.model.seed = opts.seed
    backends.check(opts.model)
    name = opts.name or default_name(opts)
    run_dir = Path(opts.output or Path("runs") / name).expanduser().resolve()
    check_output(run_dir)
    data_dir = resolve_data_dir(opts.data_dir).resolve()
    for note in selection.notes:
        log(note)
    if opts.limit:
        log(f"--limit {opts.limit}: scores on a subset do not compare to the paper's.")

    with _quiet_libraries():
        from lm_eval.tasks import TaskManager

        from imhi_bench.models.generation_cache import (
            FILE_NAME,
            GenerationCache,
            cached_lm,
            default_cache_dir,
        )
        from imhi_bench.tasks.lm_tasks import DATA_DIR_METADATA, task_dir

        cache_root = Path(opts.cache_dir or default_cache_dir())
        try:
            tdir = task_dir(cache_root)
        except OSError:  # read-only cache dir: a private copy will do
            tdir = task_dir(tempfile.mkdtemp(prefix="imhi-tasks-"))
        tm = TaskManager(include_path=str(tdir), include_defaults=False,
                         metadata={DATA_DIR_METADATA: str(data_dir)})
        t_start = time.perf_counter()
        lm = load_model(opts.model)
        cache = None
        model = lm
        if opts.use_cache:
            cache_path = cache_root / FILE_NAME
            cache = GenerationCache(cache_path, backends.model_identity(opts.model))
            model = cached_lm(lm, cache)
        apply_chat = _use_chat_template(opts, lm)
        loaded = tm.load(selection.specs)
        doc_counts = {name: len(t.eval_docs) for name, t in loaded["tasks"].items()}
        try:
            results = _evaluate(model, loaded, opts, apply_chat)
        finally:
            if cache is not None:
                cache.close()
        wall = time.perf_counter() - t_start

    if results is None:  # a non-zero rank of a multi-process run writes nothing
        raise ImhiError("this process is not rank 0 of the run: results are written by rank 0")
    model_name, args = backends.model_args(opts.model)
    results["config"] = {  # as lm_eval.simple_evaluate records it
        "model": model_name, "model_args": args, "batch_size": opts.model.batch_size,
        "batch_sizes": getattr(lm, "batch_sizes_used", []), "limit": opts.limit,
        "bootstrap_iters": 0, "gen_kwargs": {"max_gen_toks": opts.max_new_tokens},
        "random_seed": opts.seed, "numpy_seed": opts.seed, "torch_seed": opts.seed,
        "fewshot_seed": opts.seed, "apply_chat_template": apply_chat,
        "system_instruction": opts.system_prompt,
    }
    results["date"] = time.time()
    run = _finish(results, selection, opts, name, run_dir, data_dir, apply_chat, doc_counts)
    n_requests = sum(len(v) for v in run.samples.values())
    run.reused = cache.hits if cache else 0
    run.generated = n_requests - run.reused
    run.generate_seconds = getattr(lm, "generate_seconds", None)
    prov = run.report["provenance"]
    prov["cache"] = ({"path": str(cache.path), "reused": run.reused,
                      "generated": run.generated} if cache is not None else None)
    prov["timing"] = {
        "wall_seconds": round(wall, 3),
        "generate_seconds": (round(run.generate_seconds, 3)
                             if run.generate_seconds is not None else None),
    }
    _write(run)
    return run


class _AlreadyRead:
    """A `scoring.label_samples` labeler handing back labels that the task's
    process_results read with `labels.extract_label` (the rules), so each generation is
    read once.  Its name is the rules' name: the report says `labeler: rules`."""

    name = RULES

    def __init__(self, set_name: str, labels: list[str | None]):
        self.sets = {set_name}
        self._labels = labels

    def predict(self, set_name: str, texts: list[str]) -> list[str | None]:
        assert len(texts) == len(self._labels)
        return self._labels


def _finish(results: dict, selection: TaskSelection, opts: EvalOptions, name: str,
            run_dir: Path, data_dir: Path, apply_chat: bool,
            doc_counts: dict[str, int]) -> EvalRun:
    from imhi_bench.benchmark.data import data_sha256
    from imhi_bench.models import backends
    from imhi_bench.scoring.labels import extract_label
    from imhi_bench.scoring.pipeline import add_quality, label_samples, make_report, score_samples
    from imhi_bench.scoring.provenance import base_provenance
    from imhi_bench.tasks.lm_tasks import TASK_VERSION, parse_task

    user_labeler = opts.quality.labeler if opts.quality is not None else None
    logged_by_task: dict[str, list[dict]] = {}
    samples: dict = {}
    records: dict[str, list[dict]] = {}
    per_set: dict[str, dict] = {}
    tasks_prov: dict[str, dict] = {}
    for task in selection.tasks:
        s, fmt = parse_task(task)
        logged = sorted(results["samples"][task], key=lambda x: x["doc_id"])
        rows = [(x["doc"]["doc_id"], x["doc"]["gold"], x["filtered_resps"][0],
                 x["arguments"][0][0]) for x in logged]
        # the task's process_results already read each label with the same rules
        read = [x["weighted_f1"][1] if isinstance(x.get("weighted_f1"), (list, tuple))
                else extract_label(s.name, x["filtered_resps"][0]) for x in logged]
        labeler = (user_labeler if user_labeler is not None and s.name in user_labeler.sets
                   else _AlreadyRead(s.name, read))
        scored = label_samples(s.name, rows, where=task, labeler=labeler)
        samples[s.name] = scored
        logged_by_task[task] = logged
        per_set[s.name] = {
            "task": task,
            "format": fmt,
            "data_file": str(data_dir / s.path(fmt)),
            "data_sha256": data_sha256(s.name, fmt, data_dir),
            "rows": doc_counts[task],
            "complete": len(scored) == doc_counts[task],
        }
        cfg = results.get("configs", {}).get(task, {})
        tasks_prov[task] = {
            "version": results.get("versions", {}).get(task, TASK_VERSION),
            "set": s.name,
            "format": fmt,
            "generation_kwargs": _jsonable(cfg.get("generation_kwargs", {})),
        }
    scores = score_samples(samples, seed=opts.seed, n_boot=opts.bootstrap,
                           labeler=user_labeler)
    if opts.quality is not None:
        add_quality(scores, samples, opts.quality)
    # after quality, so that the per-sample records carry the quality values too
    for task, logged in logged_by_task.items():
        scored = samples[parse_task(task)[0].name]
        records[task] = [_sample_record(x, sc) for x, sc in zip(logged, scored, strict=True)]
    m = opts.model
    gen_cfg = next(iter(tasks_prov.values()))["generation_kwargs"]
    provenance = {
        **base_provenance(),
        "source": "eval",
        "name": name,
        "run_dir": str(run_dir),
        "backend": m.backend,
        "model": m.model,
        "model_resolved": str(backends.local_model_dir(m.model) or "")
        if not backends.is_api(m) else None,
        "revision": m.revision,
        "adapter": str(Path(m.adapter).expanduser().resolve()) if m.adapter else None,
        "model_config_sha256": backends.model_config_sha256(m),
        "adapter_config_sha256": backends.adapter_config_sha256(m),
        "dtype": m.dtype if not backends.is_api(m) else None,
        "base_url": m.base_url,
        "seed": opts.seed,
        "limit": opts.limit,
        "bootstrap": opts.bootstrap,
        "quality": opts.quality.provenance() if opts.quality is not None else None,
        "generation": {
            **gen_cfg,
            "chat_template": apply_chat,
            "system_prompt": opts.system_prompt,
            "batch_size": m.batch_size,
        },
        "versions": backends.library_versions(m),
        "tasks": tasks_prov,
        "sets": per_set,
        "skipped": selection.notes,
    }
    report = make_report(scores, provenance)
    return EvalRun(run_dir, report, samples, results, records, notes=list(selection.notes))


def _write(run: EvalRun) -> None:
    from lm_eval.utils import handle_non_serializable

    from imhi_bench.core.fileio import atomic_write_json, atomic_write_text

    dest = run.run_dir
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        lm_results = {k: v for k, v in run.lm_eval_results.items() if k != "samples"}
        atomic_write_json(staging / LM_EVAL_RESULTS_FILE, _jsonable(lm_results))
        for task, recs in run.records.items():
            text = "".join(json.dumps(r, ensure_ascii=False, default=handle_non_serializable)
                           + "\n" for r in recs)
            atomic_write_text(staging / f"samples_{task}.jsonl", text)
        atomic_write_json(staging / RESULTS_FILE, run.report)
        # mkdtemp/mkstemp create owner-only entries; a run folder is meant to be shared.
        umask = os.umask(0)
        os.umask(umask)
        for f in staging.iterdir():
            f.chmod(0o666 & ~umask)
        staging.chmod(0o777 & ~umask)
        _publish(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
