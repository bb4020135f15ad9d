"""Checks of a checkpoint before it is queued (`imhi-bench submit`); none of them loads
weights or runs code that came with a checkpoint.

* The model (a local folder or a Hugging Face hub id) and, for a PEFT adapter, the adapter
  folder: config and tokenizer load with `AutoConfig` / `AutoTokenizer` and
  `trust_remote_code=False`; any pickle-format file (.bin, .pt, .pth, .ckpt, .pkl, ...)
  needs `--allow-pickle`, even beside safetensors (pickle files run code when loaded, and
  a decoy .safetensors must not carry a .bin through), every .safetensors must have a
  readable header, and every shard an index lists must be there; without `--allow-pickle`
  the worker loads safetensors only (`ModelOptions.safetensors_only`); a config that
  needs code of its own (`auto_map`, or a `model_type` transformers does not ship) is
  refused unless an operator passes `--allow-remote-code`, and such a submission then runs
  only on a worker started with `--trust-remote-code`.
* The revision is pinned: a hub id resolves to a commit through the hub API (or, with the
  hub unreachable, a full commit already in the local cache); a local folder gets
  `sha256:<hex>` (`content_hash`), a hash over every file the worker may load or run
  (`pinned_files`: configs, tokenizer files, weights, model code *.py, chat templates in
  subfolders; not docs, nor the resumable `checkpoint-N/` and TensorBoard `runs/` folders
  of a training run, which loading a model never reads).  The worker checks it again
  before evaluating, so a folder changed after submitting (an edited .py included) fails
  its job with the reason instead of running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line

# Files torch.load / pickle read, which run code when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# Left out of the pin: what no loader reads (docs, pictures), dot-files (git, the hub
# client's metadata), and the top-level folders of a training run that loading the model
# never touches (resumable checkpoints with optimizer state, TensorBoard logs).  Anything
# else may be read by transformers, PEFT or a model's own code, and is pinned.
_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".svg",
                 ".webp")
_UNLOADED_DIRS = re.compile(r"checkpoint-\d+|runs")


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


def pinned_files(folder: Path) -> list[str]:
    """The files a folder's content hash covers, as sorted paths relative to `folder`
    (POSIX): every file in it and its subfolders but those `_DOC_SUFFIXES`,
    `_UNLOADED_DIRS` and dot-names leave out.  Linked folders are followed, once."""
    folder = Path(folder)
    out: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        real = os.path.realpath(here)
        if real in seen:  # a link loop
            dirnames[:] = []
            continue
        seen.add(real)
        top = here == folder
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (top and _UNLOADED_DIRS.fullmatch(d)))
        for name in filenames:
            if name.startswith(".") or name.lower().endswith(_DOC_SUFFIXES):
                continue
            if (here / name).is_file():
                out.append((here / name).relative_to(folder).as_posix())
    return sorted(out)


def content_hash(folder: str | os.PathLike) -> str:
    """`sha256:<hex>` over the names and contents of the pinned files of `folder` (a folder
    of top-level configs, tokenizer and weights hashes as it did before code was pinned)."""
    from imhi_bench.core.fileio import sha256_file

    folder = Path(folder)
    h = hashlib.sha256()
    for rel in pinned_files(folder):
        h.update(f"{rel}\0{sha256_file(folder / rel)}\n".encode())
    return "sha256:" + h.hexdigest()


def _weights(names: list[str], what: str, allow_pickle: bool) -> None:
    """Refuse checkpoints without weights, or with any pickle file (unless allowed: a
    decoy .safetensors beside a .bin must not carry the .bin through)."""
    from imhi_bench.models.identity import WEIGHT_SUFFIXES

    pickles = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
    if pickles and not allow_pickle:
        has_st = any(n.lower().endswith(".safetensors") for n in names)
        fix = ("delete them (the folder has safetensors weights) or convert them to "
               "safetensors" if has_st else "convert them to safetensors (save_pretrained(..., "
               "safe_serialization=True))")
        raise ImhiError(
            f"{what} has pickle files ({', '.join(pickles[:3])}), which can run code when "
            f"loaded: {fix}, or pass --allow-pickle if you trust them"
        )
    weights = [n for n in names if n.lower().endswith(WEIGHT_SUFFIXES)]
    if pickles or any(n.lower().endswith(".safetensors") for n in weights):
        return
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


def _check_safetensors(folder: Path, files: list[str], what: str) -> None:
    """Every .safetensors file has a readable header: a 0-byte or unparseable one is
    refused now, not by the worker after the queue wait."""
    from imhi_bench.models.loading import safetensors_problem

    for rel in files:
        if rel.lower().endswith(".safetensors"):
            problem = safetensors_problem(folder / rel)
            if problem:
                raise ImhiError(f"{what}: {rel} is not a usable safetensors file ({problem}): "
                                "re-save the model with save_pretrained and submit again")


def safetensors_params(files: list[Path]) -> int | None:
    """Parameter count from safetensors headers (no tensor is read); None if unreadable."""
    from imhi_bench.models.loading import safetensors_header

    total = 0
    for f in files:
        if f.suffix != ".safetensors":
            continue
        try:
            header, _, _ = safetensors_header(f)
        except ValueError:
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
    _weights(files, what, allow_pickle)
    _check_safetensors(folder, files, what)
    _missing_shards(folder)
    reason = remote_code_reason(config, tok_config)
    _refuse_remote_code(reason, what, allow_remote_code)
    if reason is None:  # with remote code, loading would run it: only the JSON is read
        load_config_and_tokenizer(str(folder), None, what)
    return Checked(model or str(folder), revision or content_hash(folder), model is None,
                   config, reason, safetensors_params([folder / f for f in files]))


def _refuse_remote_code(reason: str | None, what: str, allowed: bool) -> None:
    if reason and not allowed:
        raise ImhiError(
            f"{what} needs remote code: {reason}; submissions may use only architectures "
            "built into transformers (an operator can queue it with --allow-remote-code, and "
            "it then runs only on a worker started with --trust-remote-code)"
        )


def check_local_model(path: str, what: str, *, allow_pickle: bool = False,
                      allow_remote_code: bool = False) -> Checked:
    from imhi_bench.models.options import local_model_dir

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
    from imhi_bench.models.options import local_model_dir

    kw = {"allow_pickle": allow_pickle, "allow_remote_code": allow_remote_code}
    if local_model_dir(model) is not None:
        if revision:
            raise ImhiError(f"--revision is for hub ids, and {model} is a local folder: drop "
                            "it (a folder is pinned by a hash of its files)")
        return check_local_model(model, what, **kw)
    return check_hub_model(model, revision, what, **kw)


def check_adapter(path: str, *, allow_pickle: bool = False) -> tuple[Path, str, dict]:
    """(folder, content hash, adapter_config.json) of a PEFT adapter folder."""
    from imhi_bench.models import options as backends

    folder = backends.check_adapter(path)
    what = f"adapter {path}"
    cfg = _read_json(folder / "adapter_config.json", f"{what}: adapter_config.json")
    if not cfg.get("peft_type"):
        raise ImhiError(f"{what}: adapter_config.json has no peft_type, so PEFT cannot load "
                        "it: regenerate it with save_pretrained")
    files = pinned_files(folder)
    _weights(files, what, allow_pickle)
    _check_safetensors(folder, files, what)
    return folder, content_hash(folder), cfg
