"""A submission to the queue (`imhi-bench submit`): its name, id and deduplication key,
`prepare` (every check, through `imhi_bench.queue.checkpoint`, before anything is queued)
and `enqueue`.

* The name is checked (it becomes part of a file name: letters, digits and . _ + - only).
* The deduplication key is sha256 of (model, revision, precision, backend, adapter).  A
  local folder enters it by content hash alone, so the same checkpoint copied elsewhere is
  still a duplicate.

`enqueue` then writes the manifest `<submissions dir>/<id>.json` and the store row in one
logical step: the row is inserted, the manifest written atomically, then the transaction
committed; if either fails neither remains.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.models.card import card_summary, read_card
from imhi_bench.queue.checkpoint import check_adapter, check_model

SUBMISSIONS_DIR_ENV = "IMHI_SUBMISSIONS_DIR"
DEFAULT_SUBMISSIONS_DIR = "submissions"
PRECISIONS: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
DEFAULT_PRECISION = "bf16"  # when the checkpoint's config states no dtype
SUBMIT_BACKENDS: tuple[str, ...] = ("hf", "hf-seq2seq", "vllm")
NAME_CHARS = "letters, digits and . _ + -"
NAME_MAX = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def submissions_dir(path: str | os.PathLike | None = None) -> Path:
    """`path`, else `$IMHI_SUBMISSIONS_DIR`, else `submissions/` in the current folder."""
    return Path(path or os.environ.get(SUBMISSIONS_DIR_ENV) or DEFAULT_SUBMISSIONS_DIR) \
        .expanduser().resolve()


# --------------------------------------------------------------------------- names and ids


def check_name(name: str | None) -> str:
    """The leaderboard name, checked: it is shown everywhere and is part of a file name."""
    if name is None or not name.strip():
        raise ImhiError(f"--name is empty: give the name to show on the leaderboard ({NAME_CHARS})")
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._+-"))})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise ImhiError(f"--name {name!r} contains {shown}: a name may hold only {NAME_CHARS} "
                        "(e.g. MyLab-MentalModel-7B)")
    if not _NAME.fullmatch(name):
        raise ImhiError(f"--name {name!r} must start with a letter or digit "
                        "(e.g. MyLab-MentalModel-7B)")
    if len(name) > NAME_MAX:
        raise ImhiError(f"--name is {len(name)} characters long: use at most {NAME_MAX}")
    return name


def submission_id(name: str, dedupe_key: str) -> str:
    """`<name, lower case>-<10 hex of the key>`: safe as a file name (the name is checked),
    unique (one submission per key), and distinct on case-insensitive file systems."""
    return f"{check_name(name).lower()}-{dedupe_key[:10]}"


def manifest_path(directory: Path, sub_id: str) -> Path:
    path = (directory / f"{sub_id}.json").resolve()
    if path.parent != directory.resolve():  # cannot happen for a checked name; never trust it
        raise ImhiError(f"submission id {sub_id!r} is not a plain file name")
    return path


def dedupe_key(model: str, revision: str, precision: str, backend: str,
               adapter_revision: str = "", *, local: bool) -> str:
    """What makes two submissions the same evaluation.  A local folder counts by content
    hash (its revision) alone: the same weights copied elsewhere are a duplicate."""
    who = "<local folder>" if local else model
    text = json.dumps([who, revision, precision, backend, adapter_revision])
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- a submission


@dataclass
class SubmitOptions:
    model: str
    name: str
    revision: str | None = None
    precision: str | None = None  # None: the checkpoint's dtype, else DEFAULT_PRECISION
    backend: str | None = None  # None: hf-seq2seq for encoder-decoders, else hf
    adapter: str | None = None
    base_model: str | None = None
    type: str | None = None
    license: str | None = None
    submitter: str | None = None
    training_data: str | None = None
    allow_pickle: bool = False
    allow_remote_code: bool = False


def _short(value: str | None, what: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > limit or "\n" in value or "\r" in value:
        raise ImhiError(f"{what} must be one line of at most {limit} characters")
    return value


def _precision(opts: SubmitOptions, config: dict) -> str:
    if opts.precision:
        p = opts.precision.strip().lower()
        if p not in PRECISIONS:
            raise ImhiError(f"--precision {opts.precision!r}: use one of {', '.join(PRECISIONS)}")
        return p
    stated = config.get("dtype") or config.get("torch_dtype")
    by_dtype = {v: k for k, v in PRECISIONS.items()}
    return by_dtype.get(str(stated), DEFAULT_PRECISION)


def _backend(opts: SubmitOptions, config: dict, what: str) -> str:
    enc_dec = bool(config.get("is_encoder_decoder"))
    if opts.backend is None:
        return "hf-seq2seq" if enc_dec else "hf"
    if opts.backend not in SUBMIT_BACKENDS:
        raise ImhiError(f"--backend {opts.backend}: submissions are checkpoints; use one of "
                        f"{', '.join(SUBMIT_BACKENDS)}")
    if enc_dec and opts.backend != "hf-seq2seq":
        raise ImhiError(f"{what} is an encoder-decoder ({config.get('model_type')}): use "
                        "--backend hf-seq2seq, or leave --backend out")
    if not enc_dec and opts.backend == "hf-seq2seq":
        raise ImhiError(f"{what} is not an encoder-decoder: use --backend hf (or vllm), or "
                        "leave --backend out")
    return opts.backend


def _is_adapter_folder(path: str) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / "adapter_config.json").is_file() and \
        not (p / "config.json").is_file()


def precheck(opts: SubmitOptions) -> None:
    """The checks that load nothing and ask no hub (name, precision, backend, the model and
    adapter paths), run before the store is opened: a typo fails at once, creating nothing.
    `prepare` checks everything again, and the rest."""
    from imhi_bench.models.options import check_adapter as adapter_folder
    from imhi_bench.models.options import local_model_dir

    check_name(opts.name)
    if opts.precision is not None and opts.precision.strip().lower() not in PRECISIONS:
        raise ImhiError(f"--precision {opts.precision!r}: use one of {', '.join(PRECISIONS)}")
    if opts.backend is not None and opts.backend not in SUBMIT_BACKENDS:
        raise ImhiError(f"--backend {opts.backend!r}: submissions are checkpoints; use one of "
                        f"{', '.join(SUBMIT_BACKENDS)}")
    if not opts.model or not opts.model.strip():
        raise ImhiError("--model is empty: pass a model folder or a hub id")
    if not _is_adapter_folder(opts.model):
        local_model_dir(opts.model)  # a path that is no model folder; None for a hub id
    if opts.adapter:
        adapter_folder(opts.adapter)


def prepare(opts: SubmitOptions) -> dict:
    """Check everything and return the submission record (manifest and store row); writes
    nothing.  Raises ImhiError with one line on the first problem."""
    from imhi_bench.store.tables import MODEL_TYPES, TRAINING_DATA
    from imhi_bench.store.validate import check_choice, model_row

    name = check_name(opts.name)
    meta = {
        "type": check_choice(opts.type, MODEL_TYPES, "--type"),
        "training_data": check_choice(opts.training_data, TRAINING_DATA, "--training-data"),
        "license": _short(opts.license, "--license", 100),
        "submitter": _short(opts.submitter, "--submitter", 200),
    }
    base_model = _short(opts.base_model, "--base-model", 200)

    # Which folder is the adapter, which model its base.
    adapter = opts.adapter
    model = opts.model
    if not model or not model.strip():
        raise ImhiError("--model is empty: pass a model folder or a hub id")
    if _is_adapter_folder(model):
        if adapter:
            raise ImhiError(f"--model {model} is a PEFT adapter and --adapter is given too: "
                            "pass the base with --model and the adapter with --adapter")
        adapter, model = model, None
    adapter_info = None
    if adapter:
        folder, adapter_rev, cfg = check_adapter(adapter, allow_pickle=opts.allow_pickle)
        named = cfg.get("base_model_name_or_path") or None
        if model is None:
            model = base_model or named
            if not model:
                raise ImhiError(f"adapter {adapter} needs its base model: pass --base-model "
                                "PATH_OR_ID (its adapter_config.json names none)")
        elif base_model and base_model != model:
            raise ImhiError(f"--base-model {base_model} differs from --model {model}: with "
                            "--adapter, the base is --model; drop --base-model")
        adapter_info = (str(folder), adapter_rev)
    what = f"base model {model}" if adapter_info else f"--model {model}"

    checked = check_model(model, opts.revision, what, allow_pickle=opts.allow_pickle,
                          allow_remote_code=opts.allow_remote_code)
    precision = _precision(opts, checked.config)
    backend = _backend(opts, checked.config, what)
    if adapter_info:
        base_model = base_model or checked.model
    # a folder `imhi-bench train` wrote says what it was trained on, and from which base
    # (the contamination check compares the two)
    card = card_summary(read_card(adapter_info[0] if adapter_info else
                                  (checked.model if checked.local else None))) or {}
    if meta["training_data"] is None:
        meta["training_data"] = card.get("training_data")
    named = card.get("base_model")
    if not base_model and isinstance(named, str) and 0 < len(named) <= 200 \
            and named.strip() == named and "\n" not in named:
        base_model = named  # a card is information, never a reason to refuse a submission
    # What the worker will record for the model, checked now rather than after the eval.
    model_row({"name": name, "path": adapter_info[0] if adapter_info else checked.model,
                "base_model": base_model, "precision": precision, "params": checked.params,
                **{k: meta[k] for k in ("type", "training_data", "license")}})
    key = dedupe_key(checked.model, checked.revision, precision, backend,
                     adapter_info[1] if adapter_info else "", local=checked.local)
    from imhi_bench import __version__
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE

    return {
        "id": submission_id(name, key),
        "name": name,
        "model": checked.model,
        "revision": checked.revision,
        "precision": precision,
        "backend": backend,
        "adapter": adapter_info[0] if adapter_info else "",
        "adapter_revision": adapter_info[1] if adapter_info else "",
        "dedupe_key": key,
        "params": checked.params,
        "base_model": base_model,
        **meta,
        "needs_remote_code": checked.remote_code is not None,
        "remote_code_reason": checked.remote_code,
        "allow_pickle": bool(opts.allow_pickle),
        "local": checked.local,
        "model_type": checked.config.get("model_type"),
        "submitted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "imhi_bench_version": __version__,
        "notice": NON_CLINICAL_NOTICE,
    }


# Record keys that are columns of the submissions table.
ROW_FIELDS: tuple[str, ...] = (
    "id", "name", "model", "revision", "precision", "backend", "adapter", "adapter_revision",
    "dedupe_key", "type", "params", "base_model", "license", "training_data", "submitter",
    "needs_remote_code", "allow_pickle",
)


def enqueue(record: dict, factory, directory: Path) -> dict:
    """Write the manifest and the PENDING row, both or neither.  A duplicate (same key) or a
    name already taken raises ImhiError naming the existing submission and its status."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from imhi_bench.core.fileio import atomic_write_json
    from imhi_bench.store.engine import write_session
    from imhi_bench.store.tables import Submission

    path = manifest_path(directory, record["id"])
    wrote = False
    try:
        with write_session(factory) as session:
            _refuse_existing(session, record)
            row = Submission(**{k: record[k] for k in ROW_FIELDS}, manifest=str(path),
                             status="PENDING")
            session.add(row)
            session.flush()
            try:
                atomic_write_json(path, {**record, "manifest": str(path)})
            except OSError as e:
                raise ImhiError(f"cannot write the manifest {path} ({e.strerror}): pass "
                                "--submissions-dir with a writable folder") from None
            wrote = True
            # committed on leaving the block: a failed commit removes the manifest below
    except IntegrityError:
        # Another submit of the same checkpoint (or name) committed in between.
        if wrote:
            path.unlink(missing_ok=True)
        with factory() as session:
            _refuse_existing(session, record)
        raise
    except BaseException:
        if wrote:
            path.unlink(missing_ok=True)
        raise
    with factory() as session:
        row = session.scalars(select(Submission).where(Submission.id == record["id"])).one()
        return {"id": row.id, "status": row.status, "manifest": str(path)}


def _refuse_existing(session, record: dict) -> None:
    from sqlalchemy import select

    from imhi_bench.store.tables import Submission

    dup = session.scalars(select(Submission).where(
        Submission.dedupe_key == record["dedupe_key"])).first()
    if dup is not None:
        raise ImhiError(
            f"duplicate: submission {dup.id} ({dup.name}) already has this model, revision, "
            f"precision, backend and adapter, and is {dup.status}; nothing was queued "
            f"(see imhi-bench status {dup.id})"
        )
    taken = session.scalars(select(Submission).where(Submission.name == record["name"])).first()
    if taken is not None:
        raise ImhiError(f"--name {record['name']} is taken by submission {taken.id} "
                        f"({taken.status}) of another checkpoint: choose another name")
