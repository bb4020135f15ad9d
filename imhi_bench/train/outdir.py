"""The output folder of `imhi-bench train`: what may be written there, by whom, and when.

- A new (absent or empty) folder is trained into directly, so a run killed part-way leaves
  its checkpoints where `--resume` finds them.  A run that fails before its first
  checkpoint leaves the folder as it found it.
- `--overwrite` trains into a hidden sibling and swaps it in only once the new run has
  succeeded: a model that does not load, or a run that fails, leaves the old run whole.
- `--resume` continues a run with the same recipe, except the keys in `RESUMABLE_KEYS`;
  the recipe file is rewritten only when the resumed run succeeds.
- One run at a time: a lock on a sibling file (`fcntl.flock`, so a run killed with -9
  leaves no lock behind, only an unlocked file the next run reuses).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import check_creatable, swap_in

RECIPE_FILE = "train_recipe.yaml"  # also marks a folder as an imhi-bench training output
# What a resumed run may change: when and how it stops, logs and saves, and where the data
# and logs are.  Anything else (model, sets, batch, learning rate...) would make the card
# misstate how the weights were trained.
RESUMABLE_KEYS = ("output_dir", "data_dir", "epochs", "max_steps", "eval_steps", "f1_steps",
                  "f1_samples", "f1_max_new_tokens", "save_steps", "save_total_limit",
                  "logging_steps", "report_to", "max_val", "gradient_checkpointing")


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch` (or the only process): it alone locks and swaps."""
    return os.environ.get("RANK", "0") == "0"


def check_output_dir(path: Path, *, resume: bool, overwrite: bool) -> None:
    """An output folder is new or empty, or resumed (`--resume`), or replaced
    (`--overwrite`, only when an earlier training run wrote it); and it can be written."""
    if resume and overwrite:
        raise ImhiError("--resume and --overwrite exclude each other: keep one")
    if path.exists() and not path.is_dir():
        raise ImhiError(f"output_dir {path} is a file: pass a folder")
    # the folder itself, or the nearest folder above it, must take new files; --overwrite
    # also writes its new run beside it
    check_creatable(path / RECIPE_FILE, "output_dir")
    if overwrite and path.is_dir():
        check_creatable(path, "output_dir")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not resume and not overwrite:
        raise ImhiError(f"output_dir {path} is not empty: pass --resume to continue its run, "
                        "--overwrite to replace it, or another output_dir")
    if not (path / RECIPE_FILE).is_file():
        flag = "--resume" if resume else "--overwrite"
        raise ImhiError(f"output_dir {path} holds files imhi-bench train did not write (no "
                        f"{RECIPE_FILE}): {flag} only takes a training run; pass another "
                        "output_dir")


def check_resume(path: Path, recipe: dict, same_model) -> None:
    """A resumed run keeps the recipe it started with, but for `RESUMABLE_KEYS`.
    `same_model(a, b)` says whether two `model` values name the same model."""
    import yaml

    if not (path / RECIPE_FILE).is_file():
        return  # nothing to resume: the run starts anew
    try:
        old = yaml.safe_load((path / RECIPE_FILE).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        old = None
    if not isinstance(old, dict):
        raise ImhiError(f"--resume: {path / RECIPE_FILE} is not a readable recipe: pass "
                        "another output_dir to train anew")
    changed = [k for k, v in recipe.items() if k not in RESUMABLE_KEYS and k in old
               and (old[k] != v if k != "model" else not same_model(old[k], v))]
    if changed:
        raise ImhiError(f"--resume: recipe key{'s' if len(changed) > 1 else ''} "
                        f"{', '.join(changed)} differ{'' if len(changed) > 1 else 's'} from "
                        f"the run in {path} ({RECIPE_FILE}); a resumed run may change only "
                        f"{', '.join(RESUMABLE_KEYS)}: pass another output_dir to train anew")


@contextmanager
def output_lock(path: Path) -> Iterator[None]:
    """Hold the lock of output folder `path` (a sibling `.NAME.lock`), or refuse at once
    when another run holds it.  The file is removed on release; a reader that locked a
    file just removed sees another inode at the path and tries again."""
    if not is_main_process():
        yield
        return
    made = [p for p in path.parents if not p.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ImhiError(f"another imhi-bench train is writing output_dir {path}: wait "
                            "for it to finish, or pass another output_dir") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
        for folder in made:  # made for this run, and left empty by a failed one
            try:
                folder.rmdir()
            except OSError:
                break


@contextmanager
def training_folder(path: Path, *, overwrite: bool, has_checkpoint) -> Iterator[Path]:
    """The folder a run writes into (see the module docstring), made good on success and
    undone on failure: an `--overwrite` run's sibling is swapped in, or removed; a folder
    that was absent or empty and got no checkpoint is left as it was found; a resumed run's
    folder keeps what it had.  `has_checkpoint(folder)`: could a run resume from it?"""
    existed = path.is_dir()
    fresh = not existed or not any(path.iterdir())
    replacing = overwrite and not fresh
    work = path.with_name(f".{path.name}.overwrite") if replacing else path
    main = is_main_process()
    if main:
        if replacing:
            shutil.rmtree(work, ignore_errors=True)  # a killed earlier --overwrite's
        work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    except BaseException:
        if main and replacing:
            shutil.rmtree(work, ignore_errors=True)
        elif main and fresh and not has_checkpoint(work):
            _empty(work, remove=not existed)
        raise
    if main and replacing:
        swap_in(work, path)


def _empty(folder: Path, *, remove: bool) -> None:
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for p in folder.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
