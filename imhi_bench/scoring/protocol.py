"""The default (the paper's) protocol, a run's protocol read from its provenance, and names.

`imhi_bench.core.protocol.Protocol` is the object; this module knows the defaults of the
layers that make the numbers (label rules, quality metrics, the release's data), so it is
where a protocol is built: `score_run` records `run_protocol(...)` in every report, the
store keeps its id, the leaderboard ranks by it and `imhi-bench protocol show|diff` prints it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from imhi_bench.core.protocol import (
    GOLD_MAX,
    METRICS_VERSION,
    RELEASE,
    STOP_STRINGS,
    TASK_VERSION,
    UNKNOWN,
    Protocol,
    differences,
    short_change,
)
from imhi_bench.scoring.labels.version import RULES_VERSION
from imhi_bench.scoring.quality.table import DEFAULT_BART_MODEL, DEFAULT_BERTSCORE_MODEL

RULES_READER = f"rules/{RULES_VERSION}"
BART_DEFAULT = DEFAULT_BART_MODEL
BERTSCORE_DEFAULT = f"{DEFAULT_BERTSCORE_MODEL}@default"

# The paper's reported rows: what their numbers were made with (MentaLLaMA paper, their code).
REPORTED = Protocol(
    prompt_format="instruction", chat_template=False, system_prompt=None, num_fewshot=0,
    fewshot_seed=None, fewshot_sampler=None, decoding="as IMHI.py (checkpoint's config)",
    max_new_tokens="2048 in all (IMHI.py)", stop=(), label_reader="MentalBERT classifiers",
    bart_score="bart-large-cnn + ParaBank bart_score.pth", bertscore=UNKNOWN,
    metrics="as the authors' score.py", task_version="paper", data=RELEASE,
)
REPORTED_NAME = "as reported; MentalBERT labels; prompts as IMHI.py"


def default_protocol(prompt_format: str = "instruction") -> Protocol:
    """The paper's protocol as far as this tool can run it (raw released query, no chat
    template, zero-shot, greedy, no gold-length answer cut); each remaining deviation from
    the authors' code is in `DEVIATIONS`."""
    return Protocol(
        prompt_format=prompt_format, chat_template=False, system_prompt=None, num_fewshot=0,
        fewshot_seed=None, fewshot_sampler=None, decoding="greedy", max_new_tokens=GOLD_MAX,
        stop=STOP_STRINGS, label_reader=RULES_READER, bart_score=BART_DEFAULT,
        bertscore=BERTSCORE_DEFAULT, metrics=METRICS_VERSION, task_version=str(TASK_VERSION),
        data=RELEASE,
    )


DEFAULT_ID = default_protocol().id

# Where the default protocol still differs from the authors' (their src/IMHI.py,
# label_inference.py and score.py); README's Protocol section gives the measured effects.
DEVIATIONS: dict[str, str] = {
    "label_reader": "labels are read by rules; the paper used per-set MentalBERT classifiers "
                    "(not released with the benchmark: pass your own with --labeler)",
    "stop": "generation also stops at a blank-line run or a new 'Post:'/'Question:' "
            "(IMHI.py: end of sequence only)",
    "max_new_tokens": "up to the longest released gold response of the set in the model's "
                      "tokens; IMHI.py allows 2048 tokens for prompt and answer together",
    "bart_score": "BART-score with facebook/bart-large-cnn; the authors load the ParaBank "
                  "checkpoint bart_score.pth on it (pass it with --bart-checkpoint)",
    "metrics": "macro F1 over the gold classes, unreadable answers wrong; the authors "
               "average over every class seen and their rules default to a class",
}


def protocol_name(p: Protocol) -> str:
    """"default", or "default + <what differs>" from the default of the same prompt format;
    the paper's rows have their own name."""
    if p == REPORTED:
        return REPORTED_NAME
    diff = differences(default_protocol(p.prompt_format), p)
    fmt = "" if p.prompt_format == "instruction" else f" ({p.prompt_format})"
    if p.decoding == UNKNOWN:  # generations made elsewhere (IMHI.py CSVs, lm_eval samples)
        rest = [short_change(k, v) for k, _, v in diff if k not in _PROMPT_FIELDS]
        return "prompts unknown" + fmt + "".join(" + " + r for r in rest)
    if not diff:
        return "default" + fmt
    return "default" + fmt + " + " + ", ".join(short_change(k, v) for k, _, v in diff)


# What only the run that generated knows: unknown when generations are scored from elsewhere.
_PROMPT_FIELDS = ("chat_template", "system_prompt", "num_fewshot", "fewshot_seed",
                  "fewshot_sampler", "decoding", "max_new_tokens", "stop", "task_version")


def protocol_json(p: Protocol) -> dict:
    """What a run records: id, name and every field."""
    return {"id": p.id, "name": protocol_name(p), **p.to_fields()}


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    from imhi_bench.core.fileio import sha256_file

    return sha256_file(path)


def file_digest(path: str | os.PathLike | None) -> str:
    """sha256 (first 16 hex) of a file, or of a folder's files (relative names + contents):
    names a classifier or checkpoint by content, not by where it lies."""
    if not path:
        return UNKNOWN
    p = Path(path).expanduser()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        return UNKNOWN
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode() + b"\0")
        h.update(_file_sha256(str(f), st.st_size, st.st_mtime).encode() + b"\n")
    return h.hexdigest()[:16]


def label_reader(labeler) -> str:
    """The protocol's label reader: the rules' version, or the classifier folder's content."""
    if labeler is None:
        return RULES_READER
    root = getattr(labeler, "root", None)
    return f"classifier/{file_digest(root)} (explicit answers: {RULES_READER})"


def _quality_variants(quality: dict | None) -> tuple[str, str]:
    """(bart_score, bertscore) variants of a report's quality provenance; the defaults where
    a metric was not computed (the protocol names the variant a number would use)."""
    q = quality or {}
    bart = q.get("bart_model") or BART_DEFAULT
    if q.get("bart_model") and q.get("bart_checkpoint"):
        bart += f" + checkpoint {file_digest(q['bart_checkpoint'])}"
    bert = BERTSCORE_DEFAULT
    if q.get("bertscore_model"):
        bert = f"{q['bertscore_model']}@{q.get('bertscore_layers') or 'default'}"
    return bart, bert


def data_state(sets: dict | None) -> str:
    """"release" when every scored file is the released one, "modified: <sets>" when some
    are not, "unknown" when a set's file was not recorded.  A set the release does not hold
    (CLP) is not judged: nothing says what it should be."""
    from imhi_bench.benchmark.release import release_manifest, verify
    from imhi_bench.benchmark.sets import get_set

    if not sets:
        return UNKNOWN
    manifest = release_manifest()
    modified = []
    for name, prov in sets.items():
        prov = prov or {}
        fmt, digest = prov.get("format"), prov.get("data_sha256")
        if not fmt or not digest:
            return UNKNOWN
        entry = manifest.get(get_set(name).path(fmt))
        if entry is None:
            continue
        if "sha256" in entry:
            ok = str(entry["sha256"]).lower() == str(digest).lower()
        else:
            path = prov.get("data_file")
            try:
                ok = bool(path) and verify(path, entry).ok
            except OSError:
                return UNKNOWN
        if not ok:
            modified.append(name)
    return f"modified: {', '.join(sorted(modified))}" if modified else RELEASE


def run_protocol(provenance: dict, *, labeler=None) -> Protocol:
    """The protocol of a run, from what its provenance records (eval and the baselines
    record the prompt and decoding; generations scored from elsewhere leave them unknown)."""
    gen = provenance.get("generation")
    tasks = provenance.get("tasks") or {}
    sets = provenance.get("sets") or {}
    formats = {t.get("format") for t in tasks.values()} or {
        (s or {}).get("format") for s in sets.values()}
    formats.discard(None)
    fmt = formats.pop() if len(formats) == 1 else ("mixed" if formats else UNKNOWN)
    versions = {str(t.get("version")) for t in tasks.values() if t.get("version") is not None}
    fs = provenance.get("fewshot") or {}
    k = fs.get("num_fewshot", 0 if gen else UNKNOWN)
    bart, bert = _quality_variants(provenance.get("quality"))
    if gen:
        sampling = gen.get("do_sample")
        decoding = "greedy" if not sampling else f"sampling (temperature {gen.get('temperature')})"
        until = tuple(gen.get("until") or ())
        max_new = gen.get("max_new_tokens", gen.get("max_gen_toks", UNKNOWN))
        chat, system = gen.get("chat_template"), gen.get("system_prompt")
    else:
        decoding, until, max_new, chat, system = UNKNOWN, (UNKNOWN,), UNKNOWN, None, UNKNOWN
    return Protocol(
        prompt_format=fmt, chat_template=chat, system_prompt=system, num_fewshot=k,
        fewshot_seed=fs.get("seed") if k else None,
        fewshot_sampler=fs.get("sampler") if k else None,
        decoding=decoding, max_new_tokens=max_new, stop=until,
        label_reader=label_reader(labeler), bart_score=bart, bertscore=bert,
        metrics=METRICS_VERSION,
        task_version=versions.pop() if len(versions) == 1 else UNKNOWN,
        data=data_state(sets),
    )


def protocol_of_report(report: dict) -> Protocol | None:
    """The protocol a report (imhi_results.json) or a store run's provenance recorded."""
    prov = report.get("provenance", report) or {}
    recorded = prov.get("protocol")
    return Protocol.from_json(recorded) if isinstance(recorded, dict) else None


def describe(p: Protocol) -> list[tuple[str, str]]:
    """(field, value) rows for printing, id and name first, then each field with the
    paper's deviation noted where the default keeps one."""
    import json

    rows = [("id", p.id), ("name", protocol_name(p))]
    for k, v in p.to_fields().items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        rows.append((k, text))
    return rows


def stored_protocol(source: str | None, provenance: dict | None) -> dict:
    """The protocol JSON a store row keeps: the one the run recorded; the paper's for a
    reported row; else rebuilt from the provenance of a run recorded before protocols
    (its label reader from the labeler it names, unknown where nothing says)."""
    if source == "reported":
        return protocol_json(REPORTED)
    prov = provenance if isinstance(provenance, dict) else {}
    recorded = prov.get("protocol")
    if isinstance(recorded, dict) and recorded.get("id"):
        return recorded
    p = run_protocol(prov)
    named = ((prov.get("quality") or {}) if isinstance(prov.get("quality"), dict)
             else {}).get("labeler")
    if isinstance(named, str) and named.startswith("classifier"):
        from dataclasses import replace

        p = replace(p, label_reader=f"classifier/{UNKNOWN}")
    return protocol_json(p)
