"""Weighted F1 during training: every `f1_steps` the model generates for a fixed val subset
(greedy, the eval prompts, cut at the tasks' stop strings) and the labels are read and
scored by the same pipeline as `imhi-bench eval`.  Logged as `eval_weighted_f1` (mean over
sets), `eval_weighted_f1_<set>` and `eval_unparseable` to the terminal and TensorBoard.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import Trainer, TrainerCallback

from imhi_bench.core.sample import seeded_sample
from imhi_bench.models.prompts import encode_prompts, pad_prompts, render_prompt
from imhi_bench.train.data import Example
from imhi_bench.train.recipe import Recipe


def generate(model, tokenizer, queries: Sequence[str], style, *, max_new_tokens: int,
             batch_size: int = 8) -> list[str]:
    """Greedy generations for `queries`, longest prompts first, cut at the stop strings."""
    import torch

    from imhi_bench.tasks.names import STOP_STRINGS

    texts = [render_prompt(tokenizer, q, chat=style.chat, system_prompt=style.system_prompt)
             for q in queries]
    ids = encode_prompts(tokenizer, texts, causal=style.causal)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out: list[str] = [""] * len(ids)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                input_ids, mask = pad_prompts([ids[i] for i in batch], pad, causal=style.causal)
                width = input_ids.shape[1]
                gen = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                     max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
                new = gen[:, width:] if style.causal else gen
                for row, i in enumerate(batch):
                    text = tokenizer.decode(new[row], skip_special_tokens=True)
                    cut = min([text.find(s) for s in STOP_STRINGS if s in text] + [len(text)])
                    out[i] = text[:cut]
    finally:
        if was_training:
            model.train()
    return out


def score_generations(examples: Sequence[Example], generations: Sequence[str]) -> dict:
    """Weighted F1 (mean over sets and per set) and unparseable count, by the pipeline."""
    from imhi_bench.scoring.pipeline import SetInput, score_run

    by_set: dict[str, list] = {}
    for i, (ex, gen) in enumerate(zip(examples, generations, strict=True)):
        by_set.setdefault(ex.set, []).append((i, ex.response, gen, None))
    report = score_run({s: SetInput(rows, {}) for s, rows in by_set.items()},
                       {"source": "train"}, n_boot=0).report
    metrics = {"eval_weighted_f1": report["mean"]["weighted_f1"],
               "eval_unparseable": report["mean"]["unparseable"]}
    for name, m in report["sets"].items():
        metrics[f"eval_weighted_f1_{name}"] = m["weighted_f1"]
    return metrics


class F1Callback(TrainerCallback):
    """Runs `generate` + `score_generations` every `recipe.f1_steps` optimizer steps.  Every
    process generates (a sharded model needs all of them); the main one logs."""

    def __init__(self, recipe: Recipe, tokenizer, val: Sequence[Example], style, log=print):
        self.examples = seeded_sample(val, recipe.f1_samples, recipe.seed)
        self.recipe, self.tokenizer, self.style, self.log = recipe, tokenizer, style, log
        self.trainer = None  # set by build_trainer: its `log` reaches every reporter

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step % self.recipe.f1_steps:
            return
        gens = generate(model, self.tokenizer, [e.query for e in self.examples], self.style,
                        max_new_tokens=self.recipe.f1_max_new_tokens,
                        batch_size=self.recipe.per_device_batch_size)
        metrics = score_generations(self.examples, gens)
        if state.is_world_process_zero and self.trainer is not None:
            # the base class's log: TRL's adds its running token metrics to whatever is
            # logged; and the step's own loss line is still due (logging resets the flag)
            due = control.should_log
            Trainer.log(self.trainer, metrics)
            control.should_log = due
