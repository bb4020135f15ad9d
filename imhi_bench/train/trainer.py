"""`imhi-bench train`: a recipe -> a checkpoint `imhi-bench eval` and `submit` take as it is.

Standard libraries do the training: TRL's `SFTTrainer` for causal LMs (the MentaLLaMA
models), transformers' `Seq2SeqTrainer` for encoder-decoders (MentalBART, MentalT5), PEFT
for LoRA/QLoRA, and accelerate underneath both (so `accelerate launch` with the configs in
`recipes/accelerate/` runs DDP, FSDP or DeepSpeed ZeRO-3 without any code of ours).  What
is ours: the data (`train.data`), the exact eval prompts and the loss mask (`train.encode`),
the checks before anything loads, the periodic weighted F1 through the scoring pipeline
(`train.f1`), and the training card.

The output folder: the final model (or adapter) as safetensors + tokenizer, the recipe as
run (`train_recipe.yaml`), `checkpoint-N/` folders to resume from (optimizer and scheduler
state included), TensorBoard logs under `runs/`, and the training card.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.fileio import atomic_write_json, atomic_write_text
from imhi_bench.models.card import CARD_FILE
from imhi_bench.train.checks import (
    check_recipe,
    is_seq2seq,
    resolve_attention,
    resolve_batching,
    resolve_precision,
    train_device,
)
from imhi_bench.train.outdir import (
    RECIPE_FILE,
    check_output_dir,
    check_resume,
    folder_state,
    is_main_process,
    output_lock,
    training_folder,
)
from imhi_bench.train.recipe import Recipe


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    metrics: dict
    card: dict


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
        dataloader_pin_memory=train_device() == "cuda",
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
    """Check everything that needs no model, then load, train, save, and write the card
    (see the module docstring and `train.outdir` for what the output folder gets when)."""
    from imhi_bench.train.data import load_train_data
    from imhi_bench.train.encode import PromptStyle, encode_examples

    out = Path(recipe.output_dir).expanduser().resolve()
    check_output_dir(out, resume=resume, overwrite=overwrite)
    state = folder_state(out)
    device = train_device()
    check_recipe(recipe, device)
    seq2seq = is_seq2seq(recipe)
    if resume:
        check_resume(out, recipe.to_dict(), _same_model)
    data = load_train_data(recipe.sets, recipe.format, data_dir=recipe.data_dir,
                           max_train=recipe.max_train, max_val=recipe.max_val, seed=recipe.seed)
    for note in data.notes:
        log(note)
    dropped = {n: c["train_dropped_in_test"] for n, c in data.counts.items()
               if c.get("train_dropped_in_test")}
    log(f"training rows: {len(data.train)} from {', '.join(data.counts)}; validation rows: "
        f"{len(data.val)}" + (f"; dropped (also in a test set): {dropped}" if dropped else ""))
    if not data.val:
        log("no validation rows (none released for these sets, or all are test posts): "
            "training without validation; eval_steps and f1_steps do not apply")

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
    with output_lock(out):
        if is_main_process() and folder_state(out) != state:  # another run came between
            check_output_dir(out, resume=resume, overwrite=overwrite)
            state = folder_state(out)
        with training_folder(out, state, overwrite=overwrite,
                             has_checkpoint=lambda d: last_checkpoint(d) is not None) as work:
            return _train(recipe, data, tokenizer, style, train_enc, val_enc, out=out,
                          work=work, resume=resume, seq2seq=seq2seq, precision=precision,
                          attention=attention, batching=batching, log=log)


def _same_model(a: str, b: str) -> bool:
    """Two `model` values name the same model: equal, or the same folder."""
    from imhi_bench.models.options import local_model_dir

    if a == b:
        return True
    try:
        folder = local_model_dir(a)
        return folder is not None and folder == local_model_dir(b)
    except ImhiError:
        return False


def _train(recipe: Recipe, data, tokenizer, style, train_enc, val_enc, *, out: Path,
           work: Path, resume: bool, seq2seq: bool, precision: str, attention: str,
           batching: str, log) -> TrainResult:
    """Load the model, train into `work`, save, and write the recipe and card (`out` is
    where the folder ends up: `work` is its sibling under --overwrite)."""
    import yaml

    from imhi_bench.scoring.provenance import base_provenance

    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    checkpoint = last_checkpoint(work) if resume else None
    if resume:
        log(f"resuming from {checkpoint}" if checkpoint else "nothing to resume: starting anew")

    trainer = build_trainer(recipe, tokenizer, train_enc.rows, val_enc.rows, seq2seq=seq2seq,
                            precision=precision, attention=attention, batching=batching,
                            style=style, val_examples=data.val, out=work, log=log)
    recipe_text = yaml.safe_dump(recipe.to_dict(), sort_keys=False)
    if not (work / RECIPE_FILE).is_file():  # the model loaded: mark the folder as a run's
        atomic_write_text(work / RECIPE_FILE, recipe_text)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except (ValueError, RuntimeError, OSError) as e:
        raise ImhiError(f"training stopped: {first_line(e)}") from None
    metrics = dict(result.metrics)
    if val_enc.rows and recipe.eval_steps > 0:
        metrics.update(trainer.evaluate())

    if getattr(trainer, "is_fsdp_enabled", False):
        # a sharded state dict (recipes/accelerate/fsdp.yaml) saves resumable checkpoints;
        # the final model is gathered into one folder eval can load
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    # the saved config must let eval generate with its KV cache
    trainer.model.config.use_cache = True
    trainer.save_model(str(work))
    if not trainer.is_world_process_zero():
        return TrainResult(out, trainer.state.global_step, metrics, {})
    tokenizer.save_pretrained(str(work))
    # the pickled TrainingArguments: the recipe file says the same, and the folder stays
    # safetensors-only for `imhi-bench submit`
    (work / "training_args.bin").unlink(missing_ok=True)
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
    atomic_write_json(work / CARD_FILE, card)
    # last: a resumed run's recipe changes only once the model and card it describes exist
    atomic_write_text(work / RECIPE_FILE, recipe_text)
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
