"""Validation of what `record_run` is given, and the table rows built from it.

Everything is checked before the first write, and every problem is one ImhiError line
naming the field and the fix.  NaN and infinity (a metric that could not be computed) are
stored as null.  The quality metrics' columns come from the one quality-metric table
(`imhi_bench.scoring.quality.table`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from imhi_bench.benchmark.sets import FORMATS, get_set
from imhi_bench.core.clock import utcnow
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import without_nan
from imhi_bench.scoring.quality.table import METRICS as QUALITY_TABLE
from imhi_bench.store.tables import (
    MODEL_FIELDS,
    MODEL_TYPES,
    RUN_FIELDS,
    RUN_STATUSES,
    TRAINING_DATA,
)

# Score JSON keys with a column of their own (set results and samples); others go to `extra`.
QUALITY_KEYS: dict[str, str] = {m.key: m.column for m in QUALITY_TABLE}  # JSON key -> column
_SET_FLOAT_KEYS = ("weighted_f1", "accuracy", "macro_f1")
_SET_INT_KEYS = ("unparseable", "n")
_SET_KNOWN_KEYS = {*_SET_FLOAT_KEYS, *_SET_INT_KEYS, "weighted_f1_ci", "labeler", *QUALITY_KEYS}
_SAMPLE_TEXT_KEYS = ("generation", "gold", "gold_label", "label")
_SAMPLE_KNOWN_KEYS = {"set", "doc_id", "prompt", "prompt_hash", "correct", *_SAMPLE_TEXT_KEYS,
                      *QUALITY_KEYS}


def _finite(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImhiError(f"{what} must be a number, not {value!r}: fix the score JSON")
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or value < 0:
        raise ImhiError(f"{what} must be a whole number >= 0, not {value!r}: fix the score JSON")
    return int(value)


def _json_safe(value: Any, what: str) -> Any:
    value = without_nan(value)  # a metric that could not be computed is stored as null
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ImhiError(f"{what} cannot be stored as JSON ({e}): pass plain JSON values") \
            from None
    return value


def check_set_name(name: Any, what: str) -> str:
    """The set's name as `imhi_bench.benchmark.sets` spells it (any case is accepted)."""
    if not isinstance(name, str):
        raise ImhiError(f"{what}: set name must be text, not {name!r}")
    try:
        return get_set(name).name
    except ImhiError as e:
        raise ImhiError(f"{what}: {e}") from None


def check_choice(value: Any, choices: tuple[str, ...], what: str) -> str | None:
    """`value` as spelled in `choices` (case-insensitive); None/"" -> None."""
    if value is None or value == "":
        return None
    for c in choices:
        if isinstance(value, str) and value.strip().lower() == c.lower():
            return c
    raise ImhiError(f"{what} {value!r} is not known: use one of {', '.join(choices)}")


def parse_param_count(value: Any) -> int | None:
    """13000000000, "13B", "125M", "1.5b" -> a parameter count; None/"" -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ImhiError(f"parameter count {value!r} must be >= 0")
        return int(value)
    if isinstance(value, str):
        s = value.strip().upper().replace("_", "").replace(",", "")
        scale = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}.get(s[-1:], 1)
        number = s[:-1] if scale != 1 else s
        try:
            count = float(number)
        except ValueError:
            count = -1.0
        if count >= 0 and math.isfinite(count):
            return int(round(count * scale))
    raise ImhiError(
        f"parameter count {value!r} is not understood: write e.g. 7B, 125M or 7000000000"
    )


def _when(value: Any, what: str) -> _dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ImhiError(f"{what} {value!r} is not an ISO date-time: write e.g. "
                            "2024-05-13T10:00:00Z") from None
    if not isinstance(value, _dt.datetime):
        raise ImhiError(f"{what} must be a date-time, not {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


def _unknown_keys(given: Mapping, known, what: str) -> None:
    extra = sorted(set(given) - set(known))
    if extra:
        raise ImhiError(f"unknown {what} field(s) {', '.join(extra)}: use {', '.join(known)}")


def _text(value: Any, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ImhiError(f"{what} is missing: give it")
        return None
    if not isinstance(value, str):
        raise ImhiError(f"{what} must be text, not {value!r}")
    value = value.strip()
    if len(value) > limit:
        raise ImhiError(f"{what} is longer than {limit} characters: shorten it")
    return value


def model_row(model: Mapping) -> dict:
    """The `models` columns of a dict of MODEL_FIELDS (name required)."""
    if not isinstance(model, Mapping):
        raise ImhiError("model must be a dict of model fields")
    _unknown_keys(model, MODEL_FIELDS, "model")
    return {
        "name": _text(model.get("name"), "model name", 200, required=True),
        "path": _text(model.get("path"), "model path", 1000) or "",
        "revision": _text(model.get("revision"), "model revision", 200) or "",
        "type": check_choice(model.get("type"), MODEL_TYPES, "model type"),
        "params": parse_param_count(model.get("params")),
        "precision": _text(model.get("precision"), "precision", 20),
        "base_model": _text(model.get("base_model"), "base model", 200),
        "license": _text(model.get("license"), "license", 100),
        "training_data": check_choice(model.get("training_data"), TRAINING_DATA,
                                      "training data"),
    }


def set_result_rows(results: Mapping) -> list[dict]:
    """One `set_results` row per set of a score JSON; unknown metrics go to `extra`."""
    if not isinstance(results, Mapping) or not isinstance(results.get("sets"), Mapping):
        raise ImhiError('results must be a score JSON with a "sets" object: pass the output of '
                        "imhi-bench score --json")
    if not results["sets"]:
        raise ImhiError("results has no per-set scores: score at least one set first")
    rows, seen = [], set()
    for raw_name, metrics in results["sets"].items():
        name = check_set_name(raw_name, "results")
        if name in seen:
            raise ImhiError(f"results lists set {name} twice: keep one")
        seen.add(name)
        where = f"results for {name}"
        if not isinstance(metrics, Mapping):
            raise ImhiError(f"{where} must be an object of metrics")
        ci = metrics.get("weighted_f1_ci")
        if ci is not None and (not isinstance(ci, (list, tuple)) or len(ci) != 2):
            raise ImhiError(f"{where}: weighted_f1_ci must be [low, high], not {ci!r}")
        lo, hi = (None, None) if ci is None else (
            _finite(ci[0], f"{where}: CI low"), _finite(ci[1], f"{where}: CI high"))
        row = {"set_name": name, "weighted_f1_lo": lo, "weighted_f1_hi": hi}
        row.update({k: _finite(metrics.get(k), f"{where}: {k}") for k in _SET_FLOAT_KEYS})
        row.update({k: _count(metrics.get(k), f"{where}: {k}") for k in _SET_INT_KEYS})
        row.update({col: _finite(metrics.get(key), f"{where}: {key}")
                    for key, col in QUALITY_KEYS.items()})
        row["labeler"] = _text(metrics.get("labeler"), f"{where}: labeler", 300)
        extra = {k: v for k, v in metrics.items() if k not in _SET_KNOWN_KEYS}
        row["extra"] = _json_safe(extra, f"{where}: extra metrics") if extra else None
        rows.append(row)
    return rows


def _prompt_hash(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def sample_rows(samples: list[Mapping], set_names: set[str]) -> tuple[list[dict], dict]:
    """Sample rows and {hash: prompt text} of the prompts they carry."""
    rows, prompts, seen = [], {}, set()
    for i, s in enumerate(samples):
        where = f"sample {i + 1}"
        if not isinstance(s, Mapping):
            raise ImhiError(f"{where} must be an object")
        name = check_set_name(s.get("set"), where)
        if name not in set_names:
            raise ImhiError(f"{where} is from set {name}, which results does not score: "
                            "pass the samples of the scored sets only")
        doc_id = s.get("doc_id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, int) or doc_id < 0:
            raise ImhiError(f"{where}: doc_id must be a row number >= 0, not {doc_id!r}")
        if (name, doc_id) in seen:
            raise ImhiError(f"{where}: {name} doc {doc_id} appears twice: keep one")
        seen.add((name, doc_id))
        prompt, phash = s.get("prompt"), s.get("prompt_hash")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise ImhiError(f"{where}: prompt must be text")
            phash = _prompt_hash(prompt)
            prompts[phash] = prompt
        elif phash is not None and not isinstance(phash, str):
            raise ImhiError(f"{where}: prompt_hash must be text")
        row = {"set_name": name, "doc_id": doc_id, "prompt_hash": phash}
        for k in _SAMPLE_TEXT_KEYS:
            v = s.get(k)
            if v is not None and not isinstance(v, str):
                raise ImhiError(f"{where}: {k} must be text, not {v!r}")
            row[k] = v
        correct = s.get("correct")
        if correct is not None and not isinstance(correct, bool):
            raise ImhiError(f"{where}: correct must be true or false, not {correct!r}")
        row["correct"] = correct
        row.update({col: _finite(s.get(key), f"{where}: {key}")
                    for key, col in QUALITY_KEYS.items()})
        extra = {k: v for k, v in s.items() if k not in _SAMPLE_KNOWN_KEYS}
        row["extra"] = _json_safe(extra, f"{where}: extra fields") if extra else None
        rows.append(row)
    return rows, prompts


def run_row(run: Mapping, results: Mapping, set_names: list[str]) -> dict:
    """The `runs` columns of a reproduced run (RUN_FIELDS, defaults from the score JSON)."""
    if not isinstance(run, Mapping):
        raise ImhiError("run must be a dict of run fields")
    if "source" in run:
        raise ImhiError("run source cannot be set: record_run writes reproduced runs only; "
                        "paper numbers come from imhi-bench db init")
    _unknown_keys(run, RUN_FIELDS, "run")
    provenance = run.get("provenance", results.get("provenance"))
    if provenance is not None and not isinstance(provenance, Mapping):
        raise ImhiError("run provenance must be an object")
    fmt = run.get("format") or (provenance or {}).get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ImhiError(f"run format {fmt!r} is not known: use one of {', '.join(FORMATS)}")
    tasks = run.get("tasks")
    tasks = set_names if tasks is None else [check_set_name(t, "run tasks") for t in tasks]
    config = run.get("generation_config")
    if config is not None and not isinstance(config, Mapping):
        raise ImhiError("run generation_config must be an object")
    mean = results.get("mean")
    if mean is not None and not isinstance(mean, Mapping):
        raise ImhiError('results "mean" must be an object')
    from imhi_bench.scoring.protocol import stored_protocol

    protocol = stored_protocol("reproduced", dict(provenance) if provenance else None)
    k = protocol.get("num_fewshot")
    setting = _text(run.get("setting"), "run setting", 100) or (
        f"{k}-shot" if isinstance(k, int) and k > 0 else "")
    return {
        "source": "reproduced",
        "protocol_id": protocol["id"],
        "protocol": _json_safe(protocol, "protocol"),
        "backend": _text(run.get("backend"), "run backend", 50),
        "tasks": tasks,
        "format": fmt,
        "setting": setting,
        "generation_config": _json_safe(dict(config), "generation_config") if config else None,
        "provenance": _json_safe(dict(provenance), "provenance") if provenance else None,
        "mean": _json_safe(dict(mean), 'results "mean"') if mean else None,
        "status": check_choice(run.get("status"), RUN_STATUSES, "run status") or "finished",
        "started_at": _when(run.get("started_at"), "run started_at"),
        "finished_at": _when(run.get("finished_at"), "run finished_at") or utcnow(),
    }
