"""`imhi-bench train`: a recipe -> a checkpoint `imhi-bench eval` and `submit` take as it is.

Standard libraries do the training: TRL's `SFTTrainer` for causal LMs (the MentaLLaMA
models), transformers' `Seq2SeqTrainer` for encoder-decoders (MentalBART, MentalT5), PEFT
for LoRA/QLoRA, and accelerate underneath both (so `accelerate launch` with the configs in
`trainer/accelerate/` runs DDP, FSDP or DeepSpeed ZeRO-3 without any code of ours).  What
is ours: the data (`train.data`), the exact eval prompts and the loss mask (`train.encode`),
the checks before anything loads, the periodic weighted F1 through the scoring pipeline
(`train.f1`), and the training card.

The output folder: the final model (or adapter) as safetensors + tokenizer, the recipe as
run (`train_recipe.yaml`), `checkpoint-N/` folders to resume from (optimizer and scheduler
state included), TensorBoard logs under `runs/`, and the training card.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.fileio import atomic_write_json, atomic_write_text
from imhi_bench.models.card import CARD_FILE
from imhi_bench.train.recipe import Recipe

RECIPE_FILE = "train_recipe.yaml"  # also marks a folder as an imhi-bench training output


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    metrics: dict
    card: dict


# --------------------------------------------------------------------------- checks


def check_output_dir(path: Path, *, resume: bool, overwrite: bool) -> None:
    """An output folder is new or empty, or resumed (`--resume`), or replaced
    (`--overwrite`, only when an earlier training run wrote it)."""
    if resume and overwrite:
        raise ImhiError("--resume and --overwrite exclude each other: keep one")
    if path.exists() and not path.is_dir():
        raise ImhiError(f"output_dir {path} is a file: pass a folder")
    if not path.is_dir() or not any(path.iterdir()) or resume:
        return
    if not overwrite:
        raise ImhiError(f"output_dir {path} is not empty: pass --resume to continue its run, "
                        "--overwrite to replace it, or another output_dir")
    if not (path / RECIPE_FILE).is_file():
        raise ImhiError(f"output_dir {path} holds files imhi-bench train did not write (no "
                        f"{RECIPE_FILE}): --overwrite only replaces a training run; pass "
                        "another output_dir")


def _device() -> str:
    from imhi_bench.models.device import default_device

    return default_device()


def resolve_attention(recipe: Recipe, device: str) -> str:
    from imhi_bench.models.device import flash_attention_available

    if recipe.attn_implementation == "auto":
        return "flash_attention_2" if flash_attention_available() else "sdpa"
    if recipe.attn_implementation == "flash_attention_2" and not flash_attention_available():
        raise ImhiError("attn_implementation=flash_attention_2 needs flash-attn on a CUDA GPU: "
                        "pip install 'imhi-bench[flash]' there, or use attn_implementation=sdpa")
    return recipe.attn_implementation


def resolve_batching(recipe: Recipe, attention: str, causal: bool) -> str:
    if recipe.batching == "auto":
        return "padding_free" if causal and attention == "flash_attention_2" else "group_by_length"
    if recipe.batching == "padding_free":
        if not causal:
            raise ImhiError("batching=padding_free is for causal LMs: use group_by_length for "
                            "BART/T5")
        if attention != "flash_attention_2":
            raise ImhiError("batching=padding_free needs flash-attention (sequences share one "
                            "row): use batching=group_by_length, or install flash-attn on a GPU")
    return recipe.batching


def resolve_precision(recipe: Recipe, device: str) -> str:
    """bf16/fp16 train on a GPU; a CPU trains in fp32 (its half-precision kernels are slow
    and fp16 has no CPU scaler)."""
    if device != "cuda":
        return "fp32"
    if recipe.precision == "auto":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return recipe.precision


def check_recipe(recipe: Recipe, device: str) -> None:
    """What can be checked before data or models load."""
    from importlib.util import find_spec

    from imhi_bench.models.options import local_model_dir

    try:
        local_model_dir(recipe.model)  # a path that is not a model folder fails now
    except ImhiError as e:  # its message names eval's option; a recipe says model=
        raise ImhiError(str(e).replace("--model ", "model=")) from None
    if recipe.finetuning == "qlora":
        if device != "cuda" or find_spec("bitsandbytes") is None:
            raise ImhiError("finetuning=qlora loads the base in 4 bits with bitsandbytes on a "
                            "CUDA GPU: use finetuning=lora (or full) here")
    if recipe.finetuning in ("lora", "qlora") and find_spec("peft") is None:
        raise ImhiError("finetuning=lora needs peft: pip install 'imhi-bench[train]'")
    if "tensorboard" in recipe.report_to and find_spec("tensorboard") is None:
        raise ImhiError("report_to=tensorboard needs tensorboard: pip install "
                        "'imhi-bench[train]', or set report_to=none")


# --------------------------------------------------------------------------- loading


def load_tokenizer(recipe: Recipe):
    from transformers import AutoTokenizer

    from imhi_bench.models.loading import explain_load_failure

    with explain_load_failure("tokenizer of", recipe.model, "model="):
        tok = AutoTokenizer.from_pretrained(recipe.model,
                                            trust_remote_code=recipe.trust_remote_code)
    if tok.pad_token is None:  # padding is masked by position, so EOS may double as pad
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def is_seq2seq(recipe: Recipe) -> bool:
    if recipe.architecture != "auto":
        return recipe.architecture == "seq2seq"
    from transformers import AutoConfig

    from imhi_bench.models.loading import explain_load_failure

    with explain_load_failure("model", recipe.model, "model="):
        cfg = AutoConfig.from_pretrained(recipe.model, trust_remote_code=recipe.trust_remote_code)
    return bool(getattr(cfg, "is_encoder_decoder", False))


def use_chat(recipe: Recipe, tokenizer, seq2seq: bool) -> bool:
    """The rule of `imhi-bench eval`: the tokenizer's template when it has one."""
    from imhi_bench.models.prompts import has_chat_template

    has = has_chat_template(tokenizer)
    if recipe.chat_template == "true" and not has:
        raise ImhiError(f"chat_template=true: {recipe.model} has no chat template in its "
                        "tokenizer config; set chat_template=auto or false")
    return has if recipe.chat_template == "auto" else recipe.chat_template == "true"


def load_model(recipe: Recipe, seq2seq: bool, precision: str, attention: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from imhi_bench.models.loading import explain_load_failure

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs: dict = {"dtype": dtype, "trust_remote_code": recipe.trust_remote_code,
                    "attn_implementation": attention}
    if recipe.finetuning == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    with explain_load_failure("model", recipe.model, "model="):
        model = cls.from_pretrained(recipe.model, **kwargs)
    if recipe.finetuning == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing)
    return model


def lora_config(recipe: Recipe, seq2seq: bool):
    if recipe.finetuning == "full":
        return None
    from peft import LoraConfig, TaskType

    targets = recipe.lora_targets
    return LoraConfig(
        r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
    )


# --------------------------------------------------------------------------- training


def checkpointing_args(on: bool) -> dict:
    """Gradient checkpointing in the installed transformers' words: newer releases (5.2x)
    call it activation checkpointing and warn on the old names, which 5.19 (the GPU set's,
    constraints/gpu.txt) alone knows."""
    import dataclasses

    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    word = "activation" if "activation_checkpointing" in fields else "gradient"
    return {f"{word}_checkpointing": on, f"{word}_checkpointing_kwargs": {"use_reentrant": False}}


def training_args(recipe: Recipe, *, precision: str, batching: str, has_val: bool,
                  seq2seq: bool, out: Path):
    """The trainer's arguments, one dict for both trainers (SFTConfig adds its own keys)."""
    report = [r for r in recipe.report_to if r.lower() != "none"]
    evaluate = has_val and recipe.eval_steps > 0
    common = dict(
        output_dir=str(out),
        per_device_train_batch_size=recipe.per_device_batch_size,
        per_device_eval_batch_size=recipe.per_device_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler,
        # transformers 5 takes the warm-up as one float: below 1 it is a share of the steps
        warmup_steps=float(recipe.warmup_ratio),
        weight_decay=recipe.weight_decay,
        optim="adamw_torch",
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **checkpointing_args(recipe.gradient_checkpointing),
        eval_strategy="steps" if evaluate else "no",
        eval_steps=recipe.eval_steps if evaluate else None,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        logging_steps=recipe.logging_steps,
        logging_first_step=True,
        report_to=report or "none",
        seed=recipe.seed,
        data_seed=recipe.seed,
        train_sampling_strategy="group_by_length" if batching == "group_by_length" else "random",
        dataloader_num_workers=0,
        dataloader_pin_memory=_device() == "cuda",
    )
    if seq2seq:
        from transformers import Seq2SeqTrainingArguments

        return Seq2SeqTrainingArguments(**common)
    from trl import SFTConfig

    # the switch above also overrides SFTConfig's own default (on)
    return SFTConfig(**common, max_length=recipe.max_length,
                     padding_free=batching == "padding_free", completion_only_loss=None)


def last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint: a run killed while saving leaves a `checkpoint-N`
    without its trainer state (written last), which cannot be resumed from."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    steps = []
    for d in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if out.is_dir() else []:
        suffix = d.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and (d / "trainer_state.json").is_file():
            steps.append((int(suffix), d))
    return str(max(steps)[1]) if steps else None


def run_training(recipe: Recipe, *, resume: bool = False, overwrite: bool = False,
                 log=print) -> TrainResult:
    """Check, load, train, save, and write the card (see the module docstring)."""
    import yaml

    from imhi_bench.scoring.provenance import base_provenance
    from imhi_bench.train.data import load_train_data
    from imhi_bench.train.encode import PromptStyle, encode_examples

    out = Path(recipe.output_dir).expanduser().resolve()
    check_output_dir(out, resume=resume, overwrite=overwrite)
    device = _device()
    check_recipe(recipe, device)
    data = load_train_data(recipe.sets, recipe.format, data_dir=recipe.data_dir,
                           max_train=recipe.max_train, max_val=recipe.max_val, seed=recipe.seed)
    for note in data.notes:
        log(note)
    dropped = {n: c["train_dropped_in_test"] for n, c in data.counts.items()
               if c.get("train_dropped_in_test")}
    log(f"training rows: {len(data.train)} from {', '.join(data.counts)}; validation rows: "
        f"{len(data.val)}" + (f"; dropped (also in a test set): {dropped}" if dropped else ""))

    seq2seq = is_seq2seq(recipe)
    attention = resolve_attention(recipe, device)
    batching = resolve_batching(recipe, attention, causal=not seq2seq)
    precision = resolve_precision(recipe, device)
    if precision != recipe.precision and recipe.precision != "auto":
        log(f"precision {recipe.precision} -> {precision} on {device}")
    tokenizer = load_tokenizer(recipe)
    style = PromptStyle(chat=use_chat(recipe, tokenizer, seq2seq),
                        system_prompt=recipe.system_prompt, causal=not seq2seq)
    train_enc = encode_examples(tokenizer, data.train, style, recipe.max_length)
    val_enc = encode_examples(tokenizer, data.val, style, recipe.max_length)
    if not train_enc.rows:
        raise ImhiError(f"no training row fits max_length={recipe.max_length}: raise it")
    log(f"posts shortened to fit max_length {recipe.max_length}: {train_enc.truncated}; rows "
        f"dropped (response alone too long): {train_enc.dropped}")

    if overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RECIPE_FILE, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    checkpoint = last_checkpoint(out) if resume else None
    if resume:
        log(f"resuming from {checkpoint}" if checkpoint else "nothing to resume: starting anew")

    trainer = build_trainer(recipe, tokenizer, train_enc.rows, val_enc.rows, seq2seq=seq2seq,
                            precision=precision, attention=attention, batching=batching,
                            style=style, val_examples=data.val, out=out, log=log)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except (ValueError, RuntimeError, OSError) as e:
        raise ImhiError(f"training stopped: {first_line(e)}") from None
    metrics = dict(result.metrics)
    if val_enc.rows and recipe.eval_steps > 0:
        metrics.update(trainer.evaluate())

    if getattr(trainer, "is_fsdp_enabled", False):
        # a sharded state dict (trainer/accelerate/fsdp.yaml) saves resumable checkpoints;
        # the final model is gathered into one folder eval can load
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    # the saved config must let eval generate with its KV cache
    trainer.model.config.use_cache = True
    trainer.save_model(str(out))
    if not trainer.is_world_process_zero():
        return TrainResult(out, trainer.state.global_step, metrics, {})
    tokenizer.save_pretrained(str(out))
    # the pickled TrainingArguments: the recipe file says the same, and the folder stays
    # safetensors-only for `imhi-bench submit`
    (out / "training_args.bin").unlink(missing_ok=True)
    card = {
        **base_provenance(),
        "started": started,
        "recipe": recipe.to_dict(),
        "training_data": recipe.training_data,
        "architecture": "seq2seq" if seq2seq else "causal",
        "chat_template": style.chat,
        "attention": attention,
        "batching": batching,
        "precision": precision,
        "data_files": data.files,
        "rows": {"train": len(train_enc.rows), "val": len(val_enc.rows),
                 "per_set": data.counts, "posts_shortened": train_enc.truncated,
                 "dropped_too_long": train_enc.dropped},
        "skipped_sets": data.notes,
        "global_step": trainer.state.global_step,
        "metrics": metrics,
        "f1_history": [h for h in trainer.state.log_history if "eval_weighted_f1" in h],
    }
    atomic_write_json(out / CARD_FILE, card)
    return TrainResult(out, trainer.state.global_step, metrics, card)


def build_trainer(recipe: Recipe, tokenizer, train_rows: list[dict], val_rows: list[dict], *,
                  seq2seq: bool, precision: str, attention: str, batching: str, style,
                  val_examples, out: Path, log=print):
    import datasets

    from imhi_bench.train.f1 import F1Callback

    args = training_args(recipe, precision=precision, batching=batching,
                         has_val=bool(val_rows), seq2seq=seq2seq, out=out)
    model = load_model(recipe, seq2seq, precision, attention)
    train_ds = datasets.Dataset.from_list(train_rows)
    val_ds = datasets.Dataset.from_list(val_rows) if val_rows else None
    callbacks = []
    if recipe.f1_steps > 0 and val_examples:
        callbacks.append(F1Callback(recipe, tokenizer, val_examples, style, log=log))
    peft = lora_config(recipe, seq2seq)
    if seq2seq:
        from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

        if peft is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft)
        trainer = Seq2SeqTrainer(
            model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
            processing_class=tokenizer, callbacks=callbacks,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100))
    else:
        from trl import SFTTrainer

        trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                             processing_class=tokenizer, peft_config=peft, callbacks=callbacks)
    for cb in callbacks:
        cb.trainer = trainer
    return trainer
