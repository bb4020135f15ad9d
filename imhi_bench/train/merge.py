"""`imhi-bench train merge`: fold a LoRA adapter into its base model, so the result is a
plain model folder (safetensors) that any backend, vLLM included, serves without PEFT."""

from __future__ import annotations

import shutil
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import atomic_write_json
from imhi_bench.models.card import CARD_FILE, read_card


def merge_adapter(adapter: str, out: str, *, base: str | None = None,
                  overwrite: bool = False) -> Path:
    """Write base + adapter, merged, to `out` (the base comes from the adapter's config
    unless `base` is given); the adapter's training card goes along, noting the merge."""
    from imhi_bench.models.loading import explain_load_failure
    from imhi_bench.models.options import adapter_config, check_adapter, local_model_dir

    folder = check_adapter(adapter)
    base = base or (adapter_config(folder) or {}).get("base_model_name_or_path")
    if not base:
        raise ImhiError(f"{adapter}'s adapter_config.json names no base model: pass --base")
    local_model_dir(base)
    dest = Path(out).expanduser().resolve()
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise ImhiError(f"--out {dest} is not empty: pass a new folder (or --overwrite)")
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    with explain_load_failure("adapter", str(folder), "--adapter"):
        task = str(PeftConfig.from_pretrained(str(folder)).task_type or "")
        cls = AutoModelForSeq2SeqLM if task.endswith("SEQ_2_SEQ_LM") else AutoModelForCausalLM
        model = PeftModel.from_pretrained(cls.from_pretrained(base), str(folder))
        has_tokenizer = (folder / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(str(folder) if has_tokenizer else base)
    merged = model.merge_and_unload()
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    card = read_card(folder)
    if card is not None:
        card["merged"] = {"adapter": str(folder), "base": base}
        atomic_write_json(staging / CARD_FILE, card)
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest
