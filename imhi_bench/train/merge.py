"""`imhi-bench train merge`: fold a LoRA adapter into its base model, so the result is a
plain model folder (safetensors) that any backend, vLLM included, serves without PEFT.

The merged folder is written beside `--out` and swapped in once complete; it carries a
marker file (`MERGE_MARKER`), and `--overwrite` replaces only a folder that has it: never
a folder merge did not write, nor one that is, holds or lies inside the adapter or base."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import atomic_write_json, check_creatable, make_shared, swap_in
from imhi_bench.models.card import CARD_FILE, read_card

MERGE_MARKER = "imhi_merge.json"  # what was merged: marks a folder merge wrote


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_out(dest: Path, sources: dict[str, Path], *, overwrite: bool) -> None:
    """`--out` may be written: not the adapter's or base's folder (nor inside one, nor
    holding one), new or empty, or (with --overwrite) an earlier merge's; and creatable."""
    for option, folder in sources.items():
        if _overlaps(dest, folder):
            raise ImhiError(f"--out {dest} is, holds or lies inside the {option} folder "
                            f"{folder}: pass a new folder for the merged model")
    if dest.exists() and not dest.is_dir():
        raise ImhiError(f"--out {dest} is a file: pass a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not (dest / MERGE_MARKER).is_file():
            raise ImhiError(f"--out {dest} holds files imhi-bench train merge did not write "
                            f"(no {MERGE_MARKER}): pass a new or empty folder")
        if not overwrite:
            raise ImhiError(f"--out {dest} holds an earlier merge: pass --overwrite to "
                            "replace it, or a new folder")
    check_creatable(dest, "--out")  # the merged folder is made beside it, then swapped in


def merge_adapter(adapter: str, out: str, *, base: str | None = None,
                  overwrite: bool = False) -> Path:
    """Write base + adapter, merged, to `out` (the base comes from the adapter's config
    unless `base` is given); the adapter's training card goes along, noting the merge."""
    from imhi_bench.models.loading import check_safetensors, explain_load_failure
    from imhi_bench.models.options import adapter_config, check_adapter, local_model_dir

    folder = check_adapter(adapter)
    option = "--base" if base else "the adapter's base_model_name_or_path"
    base = base or (adapter_config(folder) or {}).get("base_model_name_or_path")
    if not base:
        raise ImhiError(f"{adapter}'s adapter_config.json names no base model: pass --base")
    base_dir = local_model_dir(base, "--base")
    if base_dir is not None:
        check_safetensors(base_dir, option)
    dest = Path(out).expanduser().resolve()
    sources = {"--adapter": folder, **({"base": base_dir} if base_dir is not None else {})}
    check_out(dest, sources, overwrite=overwrite)
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    with explain_load_failure("adapter", str(folder), "--adapter"):
        task = str(PeftConfig.from_pretrained(str(folder)).task_type or "")
        cls = AutoModelForSeq2SeqLM if task.endswith("SEQ_2_SEQ_LM") else AutoModelForCausalLM
        model = PeftModel.from_pretrained(cls.from_pretrained(base), str(folder))
        has_tokenizer = (folder / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(str(folder) if has_tokenizer else base)
    merged = model.merge_and_unload()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        card = read_card(folder)
        if card is not None:
            card["merged"] = {"adapter": str(folder), "base": base}
            atomic_write_json(staging / CARD_FILE, card)
        atomic_write_json(staging / MERGE_MARKER, {"adapter": str(folder), "base": base})
        make_shared(staging)
        check_out(dest, sources, overwrite=overwrite)  # again: it may have changed since
        swap_in(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest
