"""The run folder, in both directions: what `imhi-bench eval` writes after a run, and what
`imhi-bench score` reads back (from a run folder, lm-eval's own output, or MentaLLaMA's).

A run folder (`write_run_folder`):

    lm_eval_results.json     lm-eval's results (per-task metrics, configs, versions; only
                             for runs through lm-eval)
    samples_<task>.jsonl     lm-eval's per-sample records + the scored sample's own fields:
                             prompt, generation, gold, gold_label, label, correct (+ quality)
    imhi_results.json        the score JSON (`imhi-bench score --json` schema), provenance
                             included

It is assembled beside the target and renamed into place at the end, so a failed run leaves
no partial results; an earlier run folder at the target is replaced, unless a run recorded
in the store points to it (`imhi_recorded.json`, written by `mark_recorded` in the
recording transaction): that folder is never replaced.

Reading (`load_predictions`): a folder in MentaLLaMA `IMHI.py` output format, one
`<SET>.csv` per set with columns `goldens` and `generated_text` (other columns, e.g.
`labels` or a pandas index, are ignored), the set taken from the file stem
case-insensitively; or one such CSV file.  Or lm-eval per-sample JSONL,
`samples_<task>[_<date>].jsonl`, as written into a run folder and by
`lm_eval --log_samples --output_path OUT` (directly in the folder or one level down, where
lm-eval puts them); or one such file.  The set comes from the record's `doc.set`, else from
the IMHI task name in the file name.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark.data import read_csv
from imhi_bench.benchmark.sets import SET_NAMES, get_set
from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.fileio import (
    atomic_write_json,
    atomic_write_text,
    check_creatable,
    make_shared,
    sha256_file,
    swap_in,
    without_nan,
)

RESULTS_FILE = "imhi_results.json"
RECORDED_FILE = "imhi_recorded.json"  # the store's runs that point to this folder
LM_EVAL_RESULTS_FILE = "lm_eval_results.json"
SAMPLES_PREFIX = "samples_"
SAMPLES_GLOB = f"{SAMPLES_PREFIX}*.jsonl"
# MentaLLaMA IMHI.py's output columns
GOLD = "goldens"
GENERATED = "generated_text"


def samples_file(task: str) -> str:
    return f"{SAMPLES_PREFIX}{task}.jsonl"


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def recorded_runs(path: Path) -> list[int]:
    """The ids of the store's runs that point to run folder `path` (its RECORDED_FILE)."""
    marker = path / RECORDED_FILE
    if not marker.exists():
        return []
    try:
        marked = json.loads(marker.read_text("utf-8"))
        ids = [r for r in marked["runs"] if isinstance(r, int) and r > 0]
    except (OSError, ValueError, TypeError, KeyError):
        ids = []
    return ids or [-1]  # a marker that does not read still says "recorded"


def check_output(path: Path) -> None:
    """A run may replace an earlier run folder that no recorded run points to, never a
    recorded run's folder (its samples are the store's evidence) nor a folder holding
    anything else, and its folder can be made (`core.fileio.check_creatable`): checked
    before any work starts, and again just before the new folder is put in place."""
    if path.exists() and (not path.is_dir() or (any(path.iterdir())
                                                and not (path / RESULTS_FILE).is_file())):
        raise ImhiError(f"--output {path} exists and is not an imhi-bench run folder: pass a "
                        "new folder (a previous run folder is replaced)")
    runs = recorded_runs(path) if path.is_dir() else []
    if runs:
        which = f"run {runs[0]}" if runs[0] > 0 else "a run"
        raise ImhiError(f"--output {path} is the folder of {which} recorded in the results "
                        "store, which is never replaced: pass a new folder")
    check_creatable(path, "--output")


def mark_recorded(path: Path, run_id: int) -> None:
    """Note in run folder `path` that store run `run_id` points to it (`check_output` then
    refuses to replace it).  A folder that is not a run folder is left alone."""
    if not (path / RESULTS_FILE).is_file():
        return
    runs = [r for r in recorded_runs(path) if r > 0]
    atomic_write_json(path / RECORDED_FILE, {"runs": [*runs, run_id]})
    make_shared(path / RECORDED_FILE)


def stamped(base: str) -> str:
    """`base` plus the UTC time, as one folder name (`folder_name`)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return folder_name(f"{base}-{stamp}")


def default_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """runs/<name> for a run given no --output: a folder of its own, never an earlier
    run's (`-2`, `-3`... when the name is taken)."""
    base = Path(root) / folder_name(name)
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def folder_name(name: str) -> str:
    """`name` as one folder name under runs/: separators and other odd characters become
    "_", and leading dots go, so `--name ../../x` stays inside runs/ (as `_.._x`) and no
    name makes a hidden folder."""
    cleaned = re.sub(r"[^\w.+-]+", "_", name.strip()).lstrip(".")
    return cleaned or "run"


def sample_record(logged: dict, sample) -> dict:
    """lm-eval's per-sample record, serialised as its EvaluationTracker writes it, plus the
    scored sample's own fields (`scoring.pipeline.Sample`), so a reader needs no knowledge
    of lm-eval's layout: the label read from the generation is the record's `label`."""
    rec = dict(logged)
    rec["arguments"] = {
        f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)}
        for i, arg in enumerate(logged["arguments"])
    }
    rec["target"] = str(logged["target"])
    rec.update(sample.to_json())
    rec["format"] = logged["doc"]["format"]
    return rec


def jsonable(obj):
    """`obj` as plain, strict JSON values: lm-eval's results hold numpy numbers, sets and
    callables, and NaN (bart_score when it is off) becomes null."""
    from lm_eval.utils import handle_non_serializable

    return without_nan(
        json.loads(json.dumps(obj, default=handle_non_serializable, ensure_ascii=False)))


def write_run_folder(dest: Path, *, lm_eval_results: dict | None, records: dict[str, list[dict]],
                     report: dict) -> None:
    """Write a run folder at `dest` atomically (see the module docstring); `records` is task
    -> per-sample records (`sample_record`).  A run that did not go through lm-eval (a
    discriminative baseline) passes `lm_eval_results=None`: no lm_eval_results.json."""
    from lm_eval.utils import handle_non_serializable

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        if lm_eval_results is not None:
            lm_results = {k: v for k, v in lm_eval_results.items() if k != "samples"}
            atomic_write_json(staging / LM_EVAL_RESULTS_FILE, jsonable(lm_results))
        for task, recs in records.items():
            text = "".join(json.dumps(r, ensure_ascii=False, default=handle_non_serializable)
                           + "\n" for r in recs)
            atomic_write_text(staging / samples_file(task), text)
        atomic_write_json(staging / RESULTS_FILE, report)
        make_shared(staging)
        check_output(dest)  # again: a run may have been recorded there meanwhile
        swap_in(staging, dest)
    except OSError as e:  # a full disk, a quota: one line, and no half-written folder
        shutil.rmtree(staging, ignore_errors=True)
        raise ImhiError(f"cannot write the run folder {dest} ({e.strerror or first_line(e)}): "
                        "free space there, or pass --output on another disk; nothing was "
                        "recorded, and cached generations are reused by a re-run") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


@dataclass
class Prediction:
    doc_id: int
    gold: str
    generation: str
    prompt: str | None = None


@dataclass
class PredictionFile:
    set: str
    path: Path
    sha256: str
    rows: list[Prediction]


def _set_of(path: Path) -> str:
    try:
        return get_set(path.stem).name
    except ImhiError:
        raise ImhiError(
            f"{path.name}: the file name must be an IMHI set name ({' '.join(SET_NAMES)}), "
            f"e.g. DR.csv; rename {path.name} or move it out of the folder"
        ) from None


def read_imhi_csv(path: Path) -> PredictionFile:
    name = _set_of(path)
    try:
        rows = read_csv(path, (GOLD, GENERATED))
        sha = sha256_file(path)
    except OSError as e:  # unreadable (permissions); missing or a folder: read_csv says so
        raise ImhiError(f"cannot read {path}: {e.strerror or first_line(e)}: check the "
                        "--predictions path and its permissions") from None
    preds = [Prediction(i, r[GOLD], r[GENERATED]) for i, r in enumerate(rows)]
    return PredictionFile(name, path, sha, preds)



def _task_of(path: Path) -> str | None:
    """The IMHI task in an lm-eval samples file name, e.g. samples_imhi_dr_2024-...jsonl."""
    from imhi_bench.tasks.names import parse_task

    stem = path.stem.removeprefix(SAMPLES_PREFIX)
    parts = stem.split("_")
    for n in range(len(parts), 0, -1):
        if parse_task("_".join(parts[:n])):
            return "_".join(parts[:n])
    return None


def _first(value):
    """lm-eval nests responses in lists (one per repeat / filter): the first string."""
    while isinstance(value, list):
        if not value:
            return ""
        value = value[0]
    return value if isinstance(value, str) else ""


def _jsonl_lines(path: Path):
    """(line number, text) of each non-blank line; a file that cannot be read or is not
    UTF-8 is one ImhiError naming the file and line (lm-eval writes UTF-8 JSON)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ImhiError(f"cannot read {path}: {e.strerror or first_line(e)}: check the "
                        "--predictions path and its permissions") from None
    for lineno, line in enumerate(raw.splitlines(), 1):
        try:
            text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise ImhiError(f"{path.name}:{lineno} is not UTF-8 text (bad byte at column "
                            f"{e.start + 1}): re-save the file as UTF-8") from None
        if text.strip():
            yield lineno, text


def _kind(value) -> str:
    """The JSON type of a parsed value, for messages."""
    for types, kind in (((bool,), "boolean"), ((int, float), "number"), ((str,), "string"),
                        ((list,), "array"), ((dict,), "object")):
        if isinstance(value, types):
            return kind
    return "null"


def _sample_fields(rec, where: str) -> tuple[dict, object, str, str | None, object]:
    """(doc, gold, generation, prompt, doc id) of one lm-eval sample record; anything of the
    wrong shape is an ImhiError naming `where` (file:line)."""
    expected = "expected the JSONL lm_eval --log_samples writes"
    if not isinstance(rec, dict):
        raise ImhiError(f"{where} is a JSON {_kind(rec)}, not an lm-eval sample record (an "
                        f"object): {expected}")
    doc = rec.get("doc")
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ImhiError(f"{where}: \"doc\" is a JSON {_kind(doc)}, not an object: {expected}")
    gen = _first(rec.get("filtered_resps", rec.get("resps")))
    args = rec.get("arguments")
    if isinstance(args, dict):
        first_args = args.get("gen_args_0")
        prompt = first_args.get("arg_0") if isinstance(first_args, dict) else None
    else:
        prompt = _first(args) if args else None
    if not isinstance(prompt, str):
        prompt = None
    return doc, doc.get("gold", rec.get("target")), gen, prompt, \
        rec.get("doc_id", doc.get("doc_id"))


def read_samples_jsonl(path: Path) -> PredictionFile:
    """One lm-eval per-sample JSONL file (one IMHI task)."""
    from imhi_bench.tasks.names import parse_task

    task = _task_of(path)
    preds: list[Prediction] = []
    names: set[str] = set()
    for lineno, line in _jsonl_lines(path):
        where = f"{path.name}:{lineno}"
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise ImhiError(f"{where} is not valid JSON ({first_line(e)}): expected one lm-eval "
                            "sample record per line, as lm_eval --log_samples writes") from None
        doc, gold, gen, prompt, raw_id = _sample_fields(rec, where)
        if not isinstance(gold, str):
            raise ImhiError(f"{where} has no gold response (doc.gold or target, a string): is "
                            "this an IMHI task's samples file?")
        doc_id = lineno - 1 if raw_id is None else raw_id
        if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)):
            raise ImhiError(f"{where}: doc_id {doc_id!r} is not an integer: fix or drop it")
        try:
            doc_id = int(doc_id)
        except ValueError:
            raise ImhiError(f"{where}: doc_id {doc_id!r} is not an integer: fix or drop it") \
                from None
        name = doc.get("set")
        if name is None:
            name = parse_task(task)[0].name if task else None
        if name is None:
            raise ImhiError(
                f"{path.name}: cannot tell the IMHI set (no doc.set, and the file name "
                "names no IMHI task): name it samples_<task>.jsonl, e.g. samples_imhi_dr.jsonl"
            )
        if not isinstance(name, str):
            raise ImhiError(f"{where}: doc.set is {json.dumps(name)}, not a set name: use one "
                            f"of {' '.join(SET_NAMES)} (or drop it and name the file "
                            "samples_<task>.jsonl)")
        try:
            names.add(get_set(name).name)
        except ImhiError:
            raise ImhiError(f"{where}: unknown IMHI set {name!r} in doc.set: use one of "
                            f"{' '.join(SET_NAMES)}") from None
        preds.append(Prediction(doc_id, gold, gen, prompt))
    if not preds:
        raise ImhiError(f"{path} is empty: expected one lm-eval sample record per line")
    if len(names) > 1:
        raise ImhiError(f"{path.name} mixes sets ({', '.join(sorted(names))}): one file per task")
    preds.sort(key=lambda p: p.doc_id)
    return PredictionFile(names.pop(), path, sha256_file(path), preds)


def _samples_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob(SAMPLES_GLOB))
    if not files:  # lm_eval --output_path OUT writes OUT/<model name>/samples_*.jsonl
        files = sorted(folder.glob(f"*/{SAMPLES_GLOB}"))
    return [f for f in files if f.is_file()]


def load_predictions(path: str | os.PathLike) -> dict[str, PredictionFile]:
    """Every set's predictions under `path`, keyed by the set's released name."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ImhiError(f"{path} does not exist: pass a folder of <SET>.csv prediction files "
                        "or an imhi-bench eval run folder")
    if path.is_file() and path.suffix.lower() == ".jsonl":
        pf = read_samples_jsonl(path)
        return {pf.set: pf}
    if path.is_dir() and _samples_files(path):
        out: dict[str, PredictionFile] = {}
        for f in _samples_files(path):
            pf = read_samples_jsonl(f)
            if pf.set in out:
                raise ImhiError(
                    f"{out[pf.set].path.name} and {f.name} are both {pf.set} predictions: "
                    "keep one (or score them from separate folders)"
                )
            out[pf.set] = pf
        return out
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise ImhiError(f"{path} is not a .csv file: pass a folder of <SET>.csv files or one")
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise ImhiError(
                f"{path} holds no prediction files: expected one <SET>.csv per set "
                f"(e.g. DR.csv) with columns {GOLD}, {GENERATED}"
            )
    out: dict[str, PredictionFile] = {}
    for f in files:
        pf = read_imhi_csv(f)
        if pf.set in out:
            raise ImhiError(
                f"{out[pf.set].path.name} and {f.name} are both {pf.set} predictions: keep one"
            )
        out[pf.set] = pf
    return out
