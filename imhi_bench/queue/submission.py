"""Checking, pinning and recording a checkpoint submitted to the queue (`imhi-bench submit`).

Everything here runs before anything is queued, and none of it loads weights or runs code
that came with a checkpoint:

* the name is checked (it becomes part of a file name: letters, digits and . _ + - only);
* the model (a local folder or a Hugging Face hub id) and, for a PEFT adapter, its base
  and the adapter folder are checked: config and tokenizer load with `AutoConfig` /
  `AutoTokenizer` and `trust_remote_code=False`; weights must be safetensors unless
  `--allow-pickle` (pickle files run code when loaded); a config that needs code of its
  own (`auto_map`, or a `model_type` transformers does not ship) is refused unless an
  operator passes `--allow-remote-code`, and such a submission then runs only on a worker
  started with `--trust-remote-code`;
* the revision is pinned: a hub id resolves to a commit through the hub API; a local folder
  gets `sha256:<hex>`, a hash over its config, tokenizer and weight files (the worker
  checks it again before evaluating, so a folder changed after submitting is not scored
  under the old submission);
* the deduplication key is sha256 of (model, revision, precision, backend, adapter).  A
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
import logging
import os
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line

SUBMISSIONS_DIR_ENV = "IMHI_SUBMISSIONS_DIR"
DEFAULT_SUBMISSIONS_DIR = "submissions"
PRECISIONS: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
DEFAULT_PRECISION = "bf16"  # when the checkpoint's config states no dtype
SUBMIT_BACKENDS: tuple[str, ...] = ("hf", "hf-seq2seq", "vllm")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
NAME_CHARS = "letters, digits and . _ + -"
NAME_MAX = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# Top-level files whose content defines a checkpoint: configs and index files (*.json),
# tokenizer files and chat templates, weights.  READMEs and other docs are left out.
_PINNED_SUFFIXES = (".json", ".model", ".jinja", ".tiktoken", ".txt",
                    ".safetensors", ".bin", ".pt", ".pth", ".gguf")


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


# --------------------------------------------------------------------------- folders



def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as e:
        raise ImhiError(f"cannot read {what} ({e.strerror}): check the folder") from None
    except ValueError as e:
        raise ImhiError(f"{what} is not valid JSON ({first_line(e)}): fix or regenerate it "
                        "with save_pretrained") from None
    if not isinstance(data, dict):
        raise ImhiError(f"{what} must hold a JSON object: regenerate it with save_pretrained")
    return data


def pinned_files(folder: Path) -> list[Path]:
    """The files a folder's content hash covers (see _PINNED_SUFFIXES)."""
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and not f.name.startswith(".")
                  and f.suffix.lower() in _PINNED_SUFFIXES)


def content_hash(folder: str | os.PathLike) -> str:
    """`sha256:<hex>` over the names and contents of the pinned files of `folder`."""
    from imhi_bench.core.fileio import sha256_file

    folder = Path(folder)
    h = hashlib.sha256()
    for f in pinned_files(folder):
        h.update(f"{f.name}\0{sha256_file(f)}\n".encode())
    return "sha256:" + h.hexdigest()


def _weights(names: list[str], what: str, allow_pickle: bool) -> None:
    """Refuse checkpoints without weights, or with pickle weights only (unless allowed)."""
    from imhi_bench.models.backends import WEIGHT_SUFFIXES

    weights = [n for n in names if n.lower().endswith(WEIGHT_SUFFIXES)]
    if any(n.lower().endswith(".safetensors") for n in weights):
        return
    pickles = [n for n in weights if n.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        if allow_pickle:
            return
        raise ImhiError(
            f"{what} has pickle weights only ({', '.join(sorted(pickles)[:3])}), which can run "
            "code when loaded: convert them to safetensors (save_pretrained(..., "
            "safe_serialization=True)), or pass --allow-pickle if you trust them"
        )
    if weights:  # .gguf
        raise ImhiError(f"{what} has GGUF weights only ({weights[0]}): submit the transformers "
                        "checkpoint (safetensors) instead")
    raise ImhiError(f"{what} has no weight files: submit the folder save_pretrained wrote "
                    "(config, tokenizer and *.safetensors)")


def _missing_shards(folder: Path) -> None:
    for index in folder.glob("*.index.json"):
        data = _read_json(index, f"{folder.name}/{index.name}")
        shards = sorted(set((data.get("weight_map") or {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ImhiError(f"{folder} lacks {missing[0]}, a weight shard listed in "
                            f"{index.name}: copy every shard into the folder")


def safetensors_params(files: list[Path]) -> int | None:
    """Parameter count from safetensors headers (no tensor is read); None if unreadable."""
    total = 0
    for f in files:
        if f.suffix != ".safetensors":
            continue
        try:
            with open(f, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                if size > 100_000_000:
                    return None
                header = json.loads(fh.read(size))
        except (OSError, ValueError, struct.error):
            return None
        for key, meta in header.items():
            if key != "__metadata__" and isinstance(meta, dict):
                n = 1
                for d in meta.get("shape") or []:
                    n *= int(d)
                total += n
    return total or None


# --------------------------------------------------------------------------- configs


def remote_code_reason(config: dict, tokenizer_config: dict | None = None) -> str | None:
    """Why loading this checkpoint would run code that came with it, or None."""
    from transformers import CONFIG_MAPPING

    if config.get("auto_map"):
        return "its config.json has auto_map (custom model code)"
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type and model_type not in CONFIG_MAPPING:
        import transformers

        return (f"model_type {model_type!r} is not built into transformers "
                f"{transformers.__version__}")
    if tokenizer_config and tokenizer_config.get("auto_map"):
        return "its tokenizer_config.json has auto_map (custom tokenizer code)"
    return None


@contextmanager
def _quiet():
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    saved = logging.getLogger("huggingface_hub").level
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
        logging.getLogger("huggingface_hub").setLevel(saved)


def load_config_and_tokenizer(source: str, revision: str | None, what: str):
    """AutoConfig and AutoTokenizer, without weights and without remote code."""
    from transformers import AutoConfig, AutoTokenizer

    with _quiet():
        try:
            config = AutoConfig.from_pretrained(source, revision=revision,
                                                trust_remote_code=False)
        except Exception as e:  # noqa: BLE001 - any failure here is the checkpoint's
            raise ImhiError(f"{what}: transformers cannot load its config ({first_line(e)}): "
                            "fix config.json") from None
        try:
            AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise ImhiError(f"{what}: transformers cannot load its tokenizer ({first_line(e)}): "
                            "include the tokenizer files save_pretrained writes") from None
    return config


# --------------------------------------------------------------------------- checking


@dataclass
class Checked:
    """A checked model (or base model): where it is and what it is."""

    model: str  # absolute folder, or hub id
    revision: str  # "sha256:<hex>" for a folder, a 40-hex commit for a hub id
    local: bool
    config: dict  # config.json as JSON
    remote_code: str | None  # why it needs remote code, or None
    params: int | None


def _check_folder(folder: Path, what: str, *, allow_pickle: bool, allow_remote_code: bool,
                  model: str | None = None, revision: str | None = None) -> Checked:
    """A model folder on disk (or a hub snapshot in the local cache, with model/revision)."""
    config = _read_json(folder / "config.json", f"{what}: config.json")
    tok_path = folder / "tokenizer_config.json"
    tok_config = _read_json(tok_path, f"{what}: tokenizer_config.json") \
        if tok_path.is_file() else None
    files = pinned_files(folder)
    _weights([f.name for f in files], what, allow_pickle)
    _missing_shards(folder)
    reason = remote_code_reason(config, tok_config)
    _refuse_remote_code(reason, what, allow_remote_code)
    if reason is None:  # with remote code, loading would run it: only the JSON is read
        load_config_and_tokenizer(str(folder), None, what)
    return Checked(model or str(folder), revision or content_hash(folder), model is None,
                   config, reason, safetensors_params(files))


def _refuse_remote_code(reason: str | None, what: str, allowed: bool) -> None:
    if reason and not allowed:
        raise ImhiError(
            f"{what} needs remote code: {reason}; submissions may use only architectures "
            "built into transformers (an operator can queue it with --allow-remote-code, and "
            "it then runs only on a worker started with --trust-remote-code)"
        )


def check_local_model(path: str, what: str, *, allow_pickle: bool = False,
                      allow_remote_code: bool = False) -> Checked:
    from imhi_bench.models.backends import local_model_dir

    folder = local_model_dir(path)  # one-line errors: a file, no config.json, an adapter
    if folder is None:
        raise ImhiError(f"{what}: no such folder")
    return _check_folder(folder, what, allow_pickle=allow_pickle,
                         allow_remote_code=allow_remote_code)


def pin_hub(model_id: str, revision: str | None):
    """The hub's model info at `revision` (its `.sha` is the commit), or the reason the hub
    could not be asked as a string."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return HfApi().model_info(model_id, revision=revision or None)
    except GatedRepoError:
        raise ImhiError(f"--model {model_id} is gated on the Hugging Face hub: the worker "
                        "cannot download it; submit a public model or a local folder") from None
    except RevisionNotFoundError:
        raise ImhiError(f"--revision {revision}: {model_id} has no such branch, tag or commit "
                        "on the Hugging Face hub") from None
    except RepositoryNotFoundError:
        raise ImhiError(f"--model {model_id}: no such model on the Hugging Face hub (or it is "
                        "private): check the id, or submit a local folder") from None
    except Exception as e:  # noqa: BLE001 - offline, DNS, timeouts: the hub is unreachable
        return first_line(e)


def check_hub_model(model_id: str, revision: str | None, what: str, *,
                    allow_pickle: bool = False, allow_remote_code: bool = False) -> Checked:
    info = pin_hub(model_id, revision)
    if isinstance(info, str):
        return _cached_snapshot(model_id, revision, what, info, allow_pickle=allow_pickle,
                                allow_remote_code=allow_remote_code)
    from huggingface_hub import hf_hub_download

    commit = info.sha
    names = [s.rfilename for s in info.siblings or [] if "/" not in s.rfilename]
    if "config.json" not in names:
        raise ImhiError(f"{what} has no config.json on the hub at {commit[:12]}: it is not a "
                        "transformers model (an adapter? pass it with --adapter)")
    _weights(names, what, allow_pickle)

    def fetch(name: str) -> dict | None:
        if name not in names:
            return None
        try:
            path = hf_hub_download(model_id, name, revision=commit)
        except Exception as e:  # noqa: BLE001
            raise ImhiError(f"{what}: cannot download {name} from the hub ({first_line(e)}): "
                            "retry later") from None
        return _read_json(Path(path), f"{what}: {name}")

    config = fetch("config.json")
    reason = remote_code_reason(config, fetch("tokenizer_config.json"))
    _refuse_remote_code(reason, what, allow_remote_code)
    if reason is None:
        load_config_and_tokenizer(model_id, commit, what)
    params = getattr(getattr(info, "safetensors", None), "total", None)
    return Checked(model_id, commit, False, config, reason, params)


def _cached_snapshot(model_id: str, revision: str | None, what: str, reason: str, *,
                     allow_pickle: bool, allow_remote_code: bool) -> Checked:
    """Hub unreachable: a full commit id already in the local Hugging Face cache is its own
    pin, and the snapshot there is checked like a folder.  Anything else is refused."""
    from huggingface_hub import snapshot_download

    if revision and _COMMIT.fullmatch(revision):
        try:
            folder = Path(snapshot_download(model_id, revision=revision, local_files_only=True))
        except Exception:  # noqa: BLE001
            folder = None
        if folder is not None and (folder / "config.json").is_file():
            return _check_folder(folder, what, allow_pickle=allow_pickle,
                                 allow_remote_code=allow_remote_code, model=model_id,
                                 revision=revision)
        raise ImhiError(f"cannot reach the Hugging Face hub to check {model_id} ({reason}), and "
                        f"commit {revision[:12]} is not in the local Hugging Face cache: retry "
                        "when the hub is reachable, or submit a local folder")
    raise ImhiError(f"cannot reach the Hugging Face hub to pin {model_id} to a commit "
                    f"({reason}): retry when it is reachable, pass --revision with a full "
                    "commit id already in the local Hugging Face cache, or submit a local folder")


def check_model(model: str, revision: str | None, what: str, *, allow_pickle: bool = False,
                allow_remote_code: bool = False) -> Checked:
    """A local folder or a hub id, checked and pinned."""
    from imhi_bench.models.backends import local_model_dir

    kw = {"allow_pickle": allow_pickle, "allow_remote_code": allow_remote_code}
    if local_model_dir(model) is not None:
        if revision:
            raise ImhiError(f"--revision is for hub ids, and {model} is a local folder: drop "
                            "it (a folder is pinned by a hash of its files)")
        return check_local_model(model, what, **kw)
    return check_hub_model(model, revision, what, **kw)


def check_adapter(path: str, *, allow_pickle: bool = False) -> tuple[Path, str, dict]:
    """(folder, content hash, adapter_config.json) of a PEFT adapter folder."""
    from imhi_bench.models import backends

    folder = backends.check_adapter(path)
    what = f"adapter {path}"
    cfg = _read_json(folder / "adapter_config.json", f"{what}: adapter_config.json")
    if not cfg.get("peft_type"):
        raise ImhiError(f"{what}: adapter_config.json has no peft_type, so PEFT cannot load "
                        "it: regenerate it with save_pretrained")
    _weights([f.name for f in pinned_files(folder)], what, allow_pickle)
    return folder, content_hash(folder), cfg


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


def prepare(opts: SubmitOptions) -> dict:
    """Check everything and return the submission record (manifest and store row); writes
    nothing.  Raises ImhiError with one line on the first problem."""
    from imhi_bench.store.db import MODEL_TYPES, TRAINING_DATA, _choice, _model_row

    name = check_name(opts.name)
    meta = {
        "type": _choice(opts.type, MODEL_TYPES, "--type"),
        "training_data": _choice(opts.training_data, TRAINING_DATA, "--training-data"),
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
    # What the worker will record for the model, checked now rather than after the eval.
    _model_row({"name": name, "path": adapter_info[0] if adapter_info else checked.model,
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
    from imhi_bench.store.db import Submission, write_session

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

    from imhi_bench.store.db import Submission

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
