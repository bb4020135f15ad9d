"""`imhi-bench eval`: run a model on IMHI tasks through lm-eval and write a run folder.

Flow of `run_eval`:

1. check everything that needs no model (tasks, data files, model/adapter folders, API
   reachability and key, the output folder), so bad input fails in seconds with one line;
2. render the task YAMLs (into the cache dir, once per version) and load the selected tasks
   with an lm-eval `TaskManager` over them (the data dir and the BART-score model go in as
   task metadata);
3. build the backend's lm-eval model through `imhi_bench.models.registry`, wrapped in the
   generation cache so a re-run after an interruption regenerates nothing already made;
4. `lm_eval.evaluator.evaluate` runs the requests (one progress bar over all of them), with
   `num_fewshot` demonstrations per sample (`imhi_bench.tasks.fewshot`);
5. score through `imhi_bench.scoring.pipeline.score_run` (the same pipeline as
   `imhi-bench score` and the worker) and write the run folder (`imhi_bench.runs.folder`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.protocol import GOLD_MAX
from imhi_bench.core.urls import mask_url
from imhi_bench.models.options import ModelOptions
from imhi_bench.models.registry import load_model  # here, so a test can stand one in
from imhi_bench.runs.folder import default_run_dir, stamped
from imhi_bench.runs.selection import TaskSelection, select_tasks
from imhi_bench.runs.settings import fewshot_seed, generation_limits, use_chat_template


@dataclass
class EvalOptions:
    model: ModelOptions
    tasks: str | None = None  # comma list of groups, tasks or set names; None: by backend
    limit: int | None = None
    max_new_tokens: int | None = None  # None: the protocol's gold-max (runs.lengths)
    # None: the raw query, as IMHI.py sends it, unless the model's training card says it was
    # trained with its chat template (then it is evaluated the same way, and says so)
    chat_template: bool | None = None
    system_prompt: str | None = None
    seed: int = 0
    num_fewshot: int = 0  # demonstrations per sample (tasks.fewshot)
    fewshot_seed: int | None = None  # seed of their draw; None: lm-eval's default (1234)
    output: str | None = None
    name: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    bootstrap: int = 1000
    quality: object | None = None  # scoring.quality QualityConfig: --quality / --labeler
    extra_provenance: dict | None = None  # merged into the run's provenance (baselines)


@dataclass
class EvalRun:
    run_dir: Path
    report: dict
    samples: dict  # set name -> [scoring.pipeline.Sample]
    lm_eval_results: dict
    records: dict = field(default_factory=dict)  # task -> per-sample JSONL records
    notes: list[str] = field(default_factory=list)
    reused: int = 0
    generated: int = 0
    generate_seconds: float | None = None  # time inside model.generate (hf backends)


def default_name(opts: EvalOptions) -> str:
    base = Path(opts.model.model.rstrip("/")).name or "model"
    if opts.model.adapter:
        base += "+" + Path(opts.model.adapter.rstrip("/")).name
    return stamped(f"{base}-{opts.model.backend}")


def check_counts(limit: int | None, max_new_tokens: int | None, bootstrap: int) -> None:
    """The numbers every scored run takes (eval, the worker, `score`'s --bootstrap), checked
    in one place before any work."""
    if limit is not None and limit < 1:
        raise ImhiError("--limit must be a positive number of samples per task")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ImhiError("--max-new-tokens must be at least 1")
    if bootstrap < 0:  # score_run would take it as "no CI" without a word
        raise ImhiError(f"--bootstrap {bootstrap}: give 0 (no CI) or more resamples")


def check_data_files(selection: TaskSelection, data_dir: Path) -> None:
    """Every row of every task's data file parses (`read_csv` finds a truncated or damaged
    file), before a model loads: lm-eval reads them only after, and a bad row would
    otherwise surface after generation."""
    from imhi_bench.benchmark.data import load_examples
    from imhi_bench.tasks.names import parse_task

    for task in selection.tasks:
        s, fmt = parse_task(task)
        load_examples(s.name, fmt, data_dir)


def check_quality_models(quality) -> None:
    """BERTScore's model loads only after generation: check now that a hub id can be had
    (BART's is checked by `quality_config` and the tasks' dataset hook)."""
    if quality is not None and "bertscore" in quality.metrics:
        from imhi_bench.scoring.quality.bertscore import check_bertscore_model

        check_bertscore_model(quality.bertscore_model)


def task_metadata(data_dir: Path, quality) -> dict:
    """What the tasks read from their metadata: the data dir, and bart_score's model as
    --quality asks (off without bart: the scoring pipeline then computes no BART-score, so
    lm-eval must not either; with it, lm-eval's aggregation computes it once and the
    pipeline gets the same values back from the BART-score module)."""
    from imhi_bench.tasks.names import (
        BART_CHECKPOINT_METADATA,
        BART_MODEL_METADATA,
        BART_OFF,
        DATA_DIR_METADATA,
    )

    bart = quality is not None and "bart" in quality.metrics
    return {
        DATA_DIR_METADATA: str(data_dir),
        BART_MODEL_METADATA: quality.bart_model if bart else BART_OFF,
        BART_CHECKPOINT_METADATA: (quality.bart_checkpoint or "") if bart else "",
    }


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


def _evaluate(lm, loaded: dict, opts: EvalOptions, apply_chat: bool,
              max_new: dict[str, int]) -> dict:
    """What lm_eval.simple_evaluate does for generate-only tasks, minus its collection of
    environment details (a second of subprocesses) and hub lookups."""
    import random

    import numpy as np
    from lm_eval.evaluator import evaluate
    from lm_eval.utils import set_torch_seed

    random.seed(opts.seed)
    np.random.seed(opts.seed)
    set_torch_seed(opts.seed)
    for name, task in loaded["tasks"].items():
        task.set_config(key="generation_kwargs", value={"max_gen_toks": max_new[name]},
                        update=True)
        task.set_config(key="num_fewshot", value=opts.num_fewshot)
        task.set_fewshot_seed(seed=fewshot_seed(opts))
    return evaluate(
        lm=lm, task_dict=loaded, limit=opts.limit, bootstrap_iters=0, log_samples=True,
        system_instruction=opts.system_prompt, apply_chat_template=apply_chat,
        fewshot_as_multiturn=False,
    )


def run_eval(opts: EvalOptions, log=print, preflight: Callable[[], object] | None = None
             ) -> EvalRun:
    """Run, score and write the run folder; `log` gets the notes worth showing a user.
    `preflight` runs after every check that needs no model and before the model loads:
    the CLI opens the results store there, so a run that could not be recorded never
    starts."""
    from imhi_bench.benchmark.data import resolve_data_dir
    from imhi_bench.models import options as model_options
    from imhi_bench.models.generation_cache import check_cache_dir
    from imhi_bench.models.identity import model_identity
    from imhi_bench.models.registry import model_args, recorded_args
    from imhi_bench.runs.folder import check_output, write_run_folder
    from imhi_bench.tasks.fewshot import fewshot_plan

    check_counts(opts.limit, opts.max_new_tokens, opts.bootstrap)
    if opts.num_fewshot < 0:
        raise ImhiError(f"--num-fewshot must be 0 or more demonstrations (got {opts.num_fewshot})")
    selection = select_tasks(opts.tasks, opts.model.backend, opts.data_dir)
    opts.model.seed = opts.seed
    model_options.check(opts.model)
    name = opts.name or default_name(opts)
    run_dir = Path(opts.output or default_run_dir(name)).expanduser().resolve()
    check_output(run_dir)  # and that it can be written
    data_dir = resolve_data_dir(opts.data_dir).resolve()
    check_data_files(selection, data_dir)
    fewshot, fewshot_notes = fewshot_plan(selection.tasks, opts.num_fewshot,
                                          fewshot_seed(opts), data_dir)
    # the network last: a hub id must be downloadable, BERTScore's model too
    model_options.check_download(opts.model)
    check_quality_models(opts.quality)
    if opts.use_cache:  # opened only once the model has loaded: check its folder now
        check_cache_dir(opts.cache_dir)
    if preflight is not None:
        preflight()
    for note in selection.notes + fewshot_notes:
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
        from imhi_bench.tasks.render import task_dir

        cache_root = Path(opts.cache_dir or default_cache_dir())
        try:
            tdir = task_dir(cache_root)
        except OSError:  # read-only cache dir: a private copy will do
            tdir = task_dir(tempfile.mkdtemp(prefix="imhi-tasks-"))
        tm = TaskManager(include_path=str(tdir), include_defaults=False,
                         metadata=task_metadata(data_dir, opts.quality))
        t_start = time.perf_counter()
        lm = load_model(opts.model)
        cache = None
        model = lm
        if opts.use_cache:
            cache_path = cache_root / FILE_NAME
            cache = GenerationCache(cache_path, model_identity(opts.model))
            model = cached_lm(lm, cache)
        apply_chat = use_chat_template(opts, lm, log)
        loaded = tm.load(selection.specs)
        doc_counts = {name: len(t.eval_docs) for name, t in loaded["tasks"].items()}
        max_new = generation_limits(opts, lm, list(loaded["tasks"]), data_dir, log)
        try:
            results = _evaluate(model, loaded, opts, apply_chat, max_new)
        finally:
            if cache is not None:
                cache.close()
        wall = time.perf_counter() - t_start

    if results is None:  # a non-zero rank of a multi-process run writes nothing
        raise ImhiError("this process is not rank 0 of the run: results are written by rank 0")
    model_name, args = model_args(opts.model)
    results["config"] = {  # as lm_eval.simple_evaluate records it
        "model": model_name, "model_args": recorded_args(args), "batch_size": opts.model.batch_size,
        "batch_sizes": getattr(lm, "batch_sizes_used", []), "limit": opts.limit,
        "bootstrap_iters": 0, "gen_kwargs": {"max_gen_toks": opts.max_new_tokens},
        "random_seed": opts.seed, "numpy_seed": opts.seed, "torch_seed": opts.seed,
        "fewshot_seed": fewshot_seed(opts), "num_fewshot": opts.num_fewshot,
        "apply_chat_template": apply_chat,
        "system_instruction": opts.system_prompt,
    }
    results["date"] = time.time()
    run = _finish(results, selection, opts, name, run_dir, data_dir, apply_chat, doc_counts,
                  fewshot=fewshot, fewshot_notes=fewshot_notes)
    data_state = run.report["provenance"]["protocol"]["data"]
    if data_state.startswith("modified"):
        log(f"The data files of {data_state.removeprefix('modified: ')} differ from the "
            "release: this run is a protocol of its own and is never ranked with runs on the "
            "released files (`imhi-bench data check` says which file differs).")
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
    prov.update(opts.extra_provenance or {})
    write_run_folder(run.run_dir, lm_eval_results=run.lm_eval_results, records=run.records,
                     report=run.report)
    return run


def task_data_provenance(task: str, data_dir: Path, scored: int, rows: int) -> dict:
    """A set's provenance in a run: the task, the released file its samples come from with
    its sha256, its row count, and whether every row was scored."""
    from imhi_bench.benchmark.data import data_sha256
    from imhi_bench.tasks.names import parse_task

    s, fmt = parse_task(task)
    return {
        "task": task,
        "format": fmt,
        "data_file": str(data_dir / s.path(fmt)),
        "data_sha256": data_sha256(s.name, fmt, data_dir),
        "rows": rows,
        "complete": scored == rows,
    }


def _finish(results: dict, selection: TaskSelection, opts: EvalOptions, name: str,
            run_dir: Path, data_dir: Path, apply_chat: bool,
            doc_counts: dict[str, int], *, fewshot: dict,
            fewshot_notes: list[str]) -> EvalRun:
    """lm-eval's logged samples -> the scoring pipeline -> the run's report and records."""
    from imhi_bench.models.card import card_summary, read_card
    from imhi_bench.models.identity import (
        adapter_config_sha256,
        library_versions,
        model_config_sha256,
    )
    from imhi_bench.models.options import is_api, local_model_dir
    from imhi_bench.runs.folder import jsonable, sample_record
    from imhi_bench.scoring.pipeline import SetInput, score_run
    from imhi_bench.tasks.names import TASK_VERSION, parse_task

    logged_by_task: dict[str, list[dict]] = {}
    inputs: dict[str, SetInput] = {}
    tasks_prov: dict[str, dict] = {}
    for task in selection.tasks:
        s, fmt = parse_task(task)
        logged = sorted(results["samples"][task], key=lambda x: x["doc_id"])
        logged_by_task[task] = logged
        rows = [(x["doc"]["doc_id"], x["doc"]["gold"], x["filtered_resps"][0],
                 x["arguments"][0][0]) for x in logged]
        inputs[s.name] = SetInput(rows, task_data_provenance(task, data_dir, len(rows),
                                                             doc_counts[task]), where=task)
        cfg = results.get("configs", {}).get(task, {})
        tasks_prov[task] = {
            "version": results.get("versions", {}).get(task, TASK_VERSION),
            "set": s.name,
            "format": fmt,
            "generation_kwargs": jsonable(cfg.get("generation_kwargs", {})),
        }
    m = opts.model
    api = is_api(m)
    gen_cfg = next(iter(tasks_prov.values()))["generation_kwargs"]
    provenance = {
        "source": "eval",
        "name": name,
        "run_dir": str(run_dir),
        "backend": m.backend,
        "model": m.model,
        "model_resolved": None if api else str(local_model_dir(m.model) or ""),
        "revision": m.revision,
        "adapter": str(Path(m.adapter).expanduser().resolve()) if m.adapter else None,
        "model_config_sha256": model_config_sha256(m),
        "adapter_config_sha256": adapter_config_sha256(m),
        "dtype": None if api else m.dtype,
        "base_url": mask_url(m.base_url),
        # score_run fills these in; named here so the keys keep their place in the JSON
        "seed": None,
        "limit": opts.limit,
        "bootstrap": None,
        "quality": None,
        "generation": {
            # max_gen_toks differs per task under gold-max: each task's is in "tasks"
            **{k: v for k, v in gen_cfg.items() if k != "max_gen_toks"},
            # the protocol's limit: gold-max (per task in "tasks") or --max-new-tokens
            "max_new_tokens": opts.max_new_tokens or GOLD_MAX,
            "chat_template": apply_chat,
            "system_prompt": opts.system_prompt,
            "batch_size": m.batch_size,
        },
        "fewshot": fewshot,
        "versions": library_versions(m),
        # what `imhi-bench train` recorded about the weights, when it made them
        "training": card_summary(read_card(m.adapter or (None if api
                                                         else local_model_dir(m.model)))),
        "tasks": tasks_prov,
        "sets": None,
        "skipped": selection.notes,
    }
    scored = score_run(inputs, provenance, seed=opts.seed, n_boot=opts.bootstrap,
                       quality=opts.quality)
    # after quality, so that the per-sample records carry the quality values too
    records = {
        task: [sample_record(x, sc) for x, sc in
               zip(logged, scored.samples[parse_task(task)[0].name], strict=True)]
        for task, logged in logged_by_task.items()
    }
    return EvalRun(run_dir, scored.report, scored.samples, results, records,
                   notes=selection.notes + fewshot_notes)
