"""`imhi-bench contamination`: was a checkpoint trained on the test items?  Needs only the
checkpoint (and, optionally, its base model).

For each set with released held-out data beside its test file (the val splits of DR,
dreaddit, Irf, MultiWD and SAD), the model scores the gold response of every test item (or
the first `limit`, as eval's --limit) and of an equally sized seeded sample of held-out
items, teacher-forced, one forward pass per item, batched longest first.  The tokens scored
are exactly those `imhi-bench train` trains on (`imhi_bench.train.encode`): the prompt as
eval sends it (the raw query, or the chat template when the training card says the model
was trained with it), then the response tokenised on its own with EOS, as the model writes
it after the prompt.  The statistics and verdicts are `imhi_bench.scoring.contamination`'s.

It lives in the train layer because it reuses the trainer's encoding, one place for how a
prompt and its response are joined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from imhi_bench.benchmark.data import (
    load_examples,
    load_pairs,
    post_key,
    present_splits,
    resolve_data_dir,
    test_posts,
)
from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, SETS, get_set
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import without_nan
from imhi_bench.core.sample import seeded_sample
from imhi_bench.scoring import contamination as stats
from imhi_bench.train.data import Example
from imhi_bench.train.encode import IGNORE, PromptStyle, encode_examples

HELD_OUT_SPLIT = "val"
DEFAULT_SEED = 1234
# Tokens per batch (padded): the logits of a batch are batch x width x vocabulary floats,
# about 2 GB at 16k tokens for a 32k vocabulary.
CPU_BATCH_TOKENS = 4096
GPU_BATCH_TOKENS = 16384
DEFAULT_MAX_LENGTH = 2048


@dataclass
class CheckOptions:
    model: str
    base: str | None = None
    adapter: str | None = None  # a PEFT adapter on `model` (the checkpoint is model + adapter)
    seq2seq: bool = False  # hf-seq2seq: completion-format data, encoder-decoder scoring
    sets: list[str] | None = None  # None: every set with held-out data
    limit: int | None = None
    seed: int = DEFAULT_SEED
    data_dir: str | None = None
    device: str | None = None
    dtype: str = "auto"
    max_length: int | None = None  # default: the model's positions, at most 2048
    batch_tokens: int | None = None
    safetensors_only: bool = False
    trust_remote_code: bool = False
    progress: bool = True


@dataclass
class Items:
    set: str
    test: list[Example] = field(default_factory=list)
    held_out: list[Example] = field(default_factory=list)


def check_sets(names: list[str] | None, fmt: str, data_dir: str | None) -> tuple[list[str],
                                                                                 dict[str, str]]:
    """(sets to check, {set: why it is skipped}): a set needs its test file and a released
    held-out split in the data dir.  Fails when no set is left."""
    root = resolve_data_dir(data_dir)
    chosen = [get_set(n).name for n in names] if names else list(SETS)
    ok, skipped = [], {}
    for name in dict.fromkeys(chosen):
        s = get_set(name)
        if HELD_OUT_SPLIT not in s.train_files:
            skipped[name] = "no released held-out data: the check cannot see this set"
        elif not (root / s.path(fmt)).is_file():
            skipped[name] = f"no {fmt} test file under {root}"
        elif HELD_OUT_SPLIT not in present_splits(name, fmt, root):
            skipped[name] = f"its {HELD_OUT_SPLIT} file is missing under {root}"
        else:
            ok.append(name)
    if not ok:
        raise ImhiError(f"no set to check under {root}: the check needs a set's test file and "
                        f"its released {HELD_OUT_SPLIT} split (DR, dreaddit, Irf, MultiWD, "
                        "SAD); run `imhi-bench data fetch --train` or pass --data-dir")
    return ok, skipped


def load_items(name: str, fmt: str, data_dir: str | None, limit: int | None,
               seed: int) -> Items:
    """The first `limit` test items (all without), and as many held-out items, a seeded
    sample of the held-out split without any row whose post is a test post."""
    test = load_examples(name, fmt, data_dir)[:limit]
    in_test = test_posts(data_dir)
    held = [Example(name, q, g) for q, g in load_pairs(name, HELD_OUT_SPLIT, fmt, data_dir)
            if post_key(q) not in in_test]
    return Items(name, [Example(name, e.query, e.gold) for e in test],
                 seeded_sample(held, len(test), seed))


# --------------------------------------------------------------------------- model


def load_model(path: str, opts: CheckOptions, adapter: str | None = None):
    """(model in eval mode, tokenizer) of a local folder or hub id, with `adapter` applied."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from imhi_bench.models.device import default_device
    from imhi_bench.models.loading import explain_load_failure

    cls = AutoModelForSeq2SeqLM if opts.seq2seq else AutoModelForCausalLM
    dtype = "auto" if opts.dtype == "auto" else getattr(torch, opts.dtype)
    kwargs = {"dtype": dtype, "trust_remote_code": opts.trust_remote_code}
    if opts.safetensors_only:
        kwargs["use_safetensors"] = True
    # an adapter folder `imhi-bench train` wrote carries the tokenizer it was trained with
    tok_from = adapter if adapter and _has_tokenizer(adapter) else path
    with explain_load_failure("model", path, "--model"):
        tok = AutoTokenizer.from_pretrained(tok_from, trust_remote_code=opts.trust_remote_code)
        model = cls.from_pretrained(path, **kwargs)
    if adapter:
        from peft import PeftModel

        with explain_load_failure("adapter", adapter, "--adapter"):
            model = PeftModel.from_pretrained(model, adapter)
    model.to(opts.device or default_device()).eval()
    return model, tok


def _has_tokenizer(folder: str) -> bool:
    from pathlib import Path

    return (Path(folder) / "tokenizer_config.json").is_file()


def _chat(opts: CheckOptions) -> bool:
    """Eval's default: the chat template when the training card says it was trained so."""
    from imhi_bench.models.card import read_card

    return bool((read_card(opts.adapter or opts.model) or {}).get("chat_template"))


def token_logprobs(model, tok, examples: list[Example], style: PromptStyle, max_length: int,
                   batch_tokens: int, desc: str = "", progress: bool = True) -> list[list[float]]:
    """Per example, the log-probability of each response token given the prompt and the
    response before it (teacher-forced); [] for an example whose response cannot fit."""
    import torch
    from tqdm import tqdm

    from imhi_bench.models.batching import budget_batches
    from imhi_bench.models.prompts import pad_prompts

    enc, kept = [], []
    for i, ex in enumerate(examples):  # one by one: a dropped example must stay visible
        rows = encode_examples(tok, [ex], style, max_length).rows
        if rows:
            enc.append(rows[0])
            kept.append(i)
    out: list[list[float]] = [[] for _ in examples]
    widths = [len(r["input_ids"]) + (0 if style.causal else len(r["labels"])) for r in enc]
    order = sorted(range(len(enc)), key=lambda i: -widths[i])
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    device = next(model.parameters()).device
    bar = tqdm(total=len(enc), desc=desc, unit="item", disable=None if progress else True)
    with torch.inference_mode():
        for batch in budget_batches(order, widths, batch_tokens):
            rows = [enc[i] for i in batch]
            ids, mask = pad_prompts([r["input_ids"] for r in rows], pad, causal=False)
            labels, _ = pad_prompts([r["labels"] for r in rows], IGNORE, causal=False)
            if style.causal:
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logits, labels = logits[:, :-1], labels[:, 1:]  # position t predicts t + 1
            else:
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                               labels=labels.to(device)).logits
            labels = labels.to(device)
            for row, i in enumerate(batch):
                at = labels[row] != IGNORE
                lp = torch.log_softmax(logits[row][at].float(), dim=-1)
                out[kept[i]] = lp.gather(1, labels[row][at][:, None])[:, 0].tolist()
            bar.update(len(batch))
    bar.close()
    return out


def score_items(model, tok, items: list[Items], opts: CheckOptions, who: str) -> dict:
    """{set: {"test": [item_scores], "held_out": [item_scores]}} of one model."""
    style = PromptStyle(chat=_chat(opts) and bool(getattr(tok, "chat_template", None)),
                        causal=not opts.seq2seq)
    cfg = getattr(model, "config", None)
    positions = getattr(cfg, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
    # the tokenizer's own limit too, when it states a real one (some say 1e30)
    limit = getattr(tok, "model_max_length", None) or DEFAULT_MAX_LENGTH
    max_length = opts.max_length or min(DEFAULT_MAX_LENGTH, positions,
                                        limit if limit < 10**6 else DEFAULT_MAX_LENGTH)
    device = next(model.parameters()).device
    budget = opts.batch_tokens or (GPU_BATCH_TOKENS if device.type == "cuda"
                                   else CPU_BATCH_TOKENS)
    out = {}
    for it in items:
        out[it.set] = {
            part: [stats.item_scores(lp) for lp in token_logprobs(
                model, tok, getattr(it, part), style, max_length, budget,
                desc=f"{who} {it.set} {part}", progress=opts.progress)]
            for part in ("test", "held_out")}
    return out


# --------------------------------------------------------------------------- the check


def run_check(opts: CheckOptions, log=print) -> dict:
    """The check's report (see `format_report`); every input is checked before a model
    loads."""
    import gc

    if opts.limit is not None and opts.limit < 2:
        raise ImhiError(f"--limit {opts.limit}: the check needs at least 2 test items per set")
    fmt = "completion" if opts.seq2seq else "instruction"
    names, skipped = check_sets(opts.sets, fmt, opts.data_dir)
    items = [load_items(n, fmt, opts.data_dir, opts.limit, opts.seed) for n in names]
    counts = [f"{i.set} ({len(i.test)} test / {len(i.held_out)} held-out)" for i in items]
    log(f"contamination check: {', '.join(counts)}")
    model, tok = load_model(opts.model, opts, opts.adapter)
    scores = {"model": score_items(model, tok, items, opts, "model")}
    del model
    gc.collect()
    if opts.base:
        base, btok = load_model(opts.base, opts)
        scores["base"] = score_items(base, btok, items, opts, "base")
        del base
        gc.collect()
    report = {
        "model": opts.model, "adapter": opts.adapter, "base": opts.base, "format": fmt,
        "limit": opts.limit, "seed": opts.seed, "min_k": stats.MIN_K,
        "thresholds": {"suspect_p": stats.SUSPECT_P, "contaminated_p": stats.CONTAMINATED_P,
                       "contaminated_d": stats.CONTAMINATED_D},
        "sets": {}, "skipped": skipped,
    }
    for it in items:
        entry: dict = {"n_test": len(it.test), "n_held_out": len(it.held_out)}
        for who, s in scores.items():
            entry[who] = stats.compare_sets(s[it.set]["test"], s[it.set]["held_out"])
        basis = "model"
        if opts.base:
            m, b = scores["model"][it.set], scores["base"][it.set]
            entry["difference"] = stats.compare_sets(
                stats.differences(m["test"], b["test"]),
                stats.differences(m["held_out"], b["held_out"]))
            basis = "difference"
        entry.update(stats.decide(entry[basis], len(items)), basis=basis)
        report["sets"][it.set] = entry
    worst = stats.worst([e["verdict"] for e in report["sets"].values()])
    top = [e for e in report["sets"].values() if e["verdict"] == worst]
    report["verdict"] = worst
    report["p_adjusted"] = min((e["p_adjusted"] for e in top), default=None)
    report["notice"] = NON_CLINICAL_NOTICE
    return without_nan(report)  # JSON: the store's provenance column and --json


def _num(x, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_report(report: dict) -> str:
    """The report as a table: per set and per statistic, test and held-out means, their
    difference, Cohen's d, AUC and p, then the set's verdict."""
    lines = [f"{'set':<9} {'scores':<10} {'stat':<7} {'test':>8} {'held-out':>8} "
             f"{'diff':>8} {'d':>6} {'AUC':>5} {'p':>8}"]
    for name, e in report["sets"].items():
        for who in ("model", "base", "difference"):
            for stat, c in e.get(who, {}).items():
                lines.append(f"{name:<9} {who:<10} {stat:<7} {_num(c['test_mean'], '8.3f')} "
                             f"{_num(c['held_out_mean'], '8.3f')} {_num(c['effect'], '8.3f')} "
                             f"{_num(c['d'], '6.2f')} {_num(c['auc'], '5.2f')} "
                             f"{_num(c['p'], '8.1e')}")
        lines.append(f"{name:<9} verdict: {e['verdict']} (adjusted p {_num(e['p_adjusted'], '.1e')}"
                     f", d {_num(e['d'], '.2f')}, {e['statistic']} of the {e['basis']}; "
                     f"{e['n_test']} test / {e['n_held_out']} held-out items)")
    for name, why in report["skipped"].items():
        lines.append(f"{name:<9} not checked: {why}")
    lines.append(f"overall: {report['verdict']}")
    lines.append(report["notice"])
    return "\n".join(lines)
