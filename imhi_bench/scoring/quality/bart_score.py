"""BART-score, the paper's explanation-quality metric, exactly as MentaLLaMA computes it.

MentaLLaMA's `score.py` uses neulab's BARTScorer (Yuan et al., 2021) with
`facebook/bart-large-cnn`, optionally fine-tuned on ParaBank (`bart_score.pth`), scoring
source = the generated response against target = the gold response:

    score = -(sum over target tokens of NLL(token | source, previous tokens)) / #target tokens

where the target tokens are the tokenizer's ids *including* <s> and </s>, padding excluded,
and both texts are truncated at 1024 tokens.  Per set the paper reports the mean.

`reference_scores` is that loop as published (batches of 4 in file order, full-vocabulary
log-softmax over every padded position); it is the oracle for tests and the benchmark.
`bart_scores` computes the same numbers with less waste: every text is tokenised once; the
encoder runs on batches of similar source length and the decoder on batches of similar
target and source length, long samples in small batches and short ones in large (see
`_plan`); padding masks are passed pre-shaped, so transformers does not expand them per
call; the LM head and the NLL run on real target positions only; everything runs under
`torch.inference_mode()`; on CPU two streams of batches share the cores.  Padding never
reaches a real position (encoder padding is masked, the decoder is causal and
right-padded), so a sample's score does not depend on which batch it lands in, beyond
float round-off (~1e-6).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from imhi_bench.core.errors import ImhiError
from imhi_bench.models.batching import budget_batches
from imhi_bench.scoring.quality.bart_model import check_bart_net, load_bart, model_key
from imhi_bench.scoring.quality.table import (
    DEFAULT_BART_MODEL,
    DEFAULT_BATCH_SIZE,
    QualityOptions,
)

MAX_LENGTH = 1024
# For documentation: the BARTScore README's value with bart-large-cnn (no ParaBank).
README_EXAMPLE = (["This is interesting."], ["This is fun."], -2.510652780532837)


def _check_pairs(srcs: Sequence[str], tgts: Sequence[str]) -> None:
    if len(srcs) != len(tgts):
        raise ImhiError(f"BART-score needs as many sources as targets ({len(srcs)} vs {len(tgts)})")


def _max_length(net) -> int:
    # bart-large-cnn has exactly 1024 positions; a smaller model must not index past its table.
    return min(MAX_LENGTH, getattr(net.config, "max_position_embeddings", MAX_LENGTH))


def _mask(lengths: list[int], device) -> torch.Tensor:
    """(batch, max length) attention mask: 1 on the first `length` positions of each row."""
    n = torch.tensor(lengths)
    return (torch.arange(int(n.max()))[None, :] < n[:, None]).long().to(device)


def _key_mask(net, lengths: list[int], device) -> torch.Tensor:
    """The padding mask over keys, for the encoder and the cross-attention.

    Given a 2-D mask, transformers expands it to a (batch, 1, queries, keys) tensor on every
    call, which cost a third as much as the attention itself on the tiny BART.  SDPA and eager
    attention take a broadcastable 4-D mask as is, so those get (batch, 1, 1, keys), additive
    (eager adds it to the scores); other kernels (flash-attention) need the 2-D mask.
    """
    mask = _mask(lengths, device)
    if net.config._attn_implementation not in ("sdpa", "eager"):
        return mask
    dtype = net.dtype
    additive = torch.zeros(mask.shape, dtype=dtype, device=device)
    additive.masked_fill_(mask == 0, torch.finfo(dtype).min)
    return additive[:, None, None, :]


def _token_ids(tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    """`tokenizer(texts, max_length=limit, truncation=True)["input_ids"]`, faster.

    A fast tokenizer's Rust backend has `encode_batch_fast`, which skips offset tracking
    (a third of the tokenising time on IMHI texts).  The backend's truncation and padding
    settings are set for the call and restored after.  A few texts, the longest among them,
    are checked against the tokenizer's own call; on any difference (a tokenizer with
    Python-side preprocessing) the tokenizer's call is used for all.
    """
    def plain(batch: list[str]) -> list[list[int]]:
        return tokenizer(batch, max_length=limit, truncation=True)["input_ids"]

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not texts or backend is None or not hasattr(backend, "encode_batch_fast"):
        return plain(texts)
    # The tokenizer's own call changes these settings too: restore them after either.
    truncation, padding = backend.truncation, backend.padding
    try:
        backend.enable_truncation(max_length=limit)
        backend.no_padding()
        ids = [e.ids for e in backend.encode_batch_fast(texts)]
        probe = sorted({0, len(texts) - 1, max(range(len(texts)), key=lambda i: len(texts[i]))})
        if plain([texts[i] for i in probe]) != [ids[i] for i in probe]:
            ids = plain(texts)
    finally:
        if truncation:
            backend.enable_truncation(**truncation)
        else:
            backend.no_truncation()
        if padding:
            backend.enable_padding(**padding)
        else:
            backend.no_padding()
    return ids


def _pad(seqs: list[list[int]], pad_id: int, device) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs], dtype=torch.long)
    return ids.to(device)


def _split(items: list[int], parts: int) -> list[list[int]]:
    size = -(-len(items) // parts)
    return [items[i: i + size] for i in range(0, len(items), size)]


# Encoder states held at once, in floats (256 MB in fp32): bounds the memory of a chunk.
_STATE_FLOATS = 2**26
# Decoder batches are cut in strips of this many batches of similar target length; within a
# strip, by source length, so both the self- and the cross-attention pad little.
_STRIP_BATCHES = 3
# Target positions per LM-head step: bounds the (positions, vocabulary) logits, 200 MB for
# bart-large-cnn's 50k vocabulary, and keeps a small model's logits in cache.
_HEAD_ROWS = 1024


def _plan(src_len: list[int], tgt_len: list[int], batch_size: int, width: int
          ) -> list[tuple[list[list[int]], list[list[int]]]]:
    """Chunks of samples as (encoder batches, decoder batches), longest first (memory
    peaks on the first batches, so a batch size too large for the device fails at once).

    Batches hold about `batch_size` samples of average length (`budget_batches`).
    Attention costs grow with the square of the padded length, and source and target
    lengths are unrelated, so the encoder is batched by source length and the decoder in
    2-D strips (`_STRIP_BATCHES`); a chunk's encoder states (`width` floats per source
    token) stay within `_STATE_FLOATS`.
    """
    n = len(src_len)
    src_tokens = batch_size * sum(src_len) / n
    tgt_tokens = batch_size * sum(tgt_len) / n
    by_target = sorted(range(n), key=lambda i: tgt_len[i], reverse=True)
    chunks: list[list[int]] = [[]]
    held = 0
    for i in by_target:
        if chunks[-1] and (held + src_len[i]) * width > _STATE_FLOATS:
            chunks.append([])
            held = 0
        chunks[-1].append(i)
        held += src_len[i]
    plan = []
    for chunk in chunks:
        by_source = sorted(chunk, key=lambda i: src_len[i], reverse=True)
        encode = budget_batches(by_source, src_len, src_tokens)
        decode = []
        for strip in budget_batches(chunk, tgt_len, tgt_tokens * _STRIP_BATCHES):
            # As many batches as the strip's padded targets need, up to _STRIP_BATCHES.
            parts = math.ceil(len(strip) * tgt_len[strip[0]] / tgt_tokens)
            strip = sorted(strip, key=lambda i: src_len[i], reverse=True)
            decode += _split(strip, max(1, min(parts, _STRIP_BATCHES)))
        plan.append((encode, decode))
    return plan


def bart_scores(
    srcs: Sequence[str],
    tgts: Sequence[str],
    *,
    model: str = DEFAULT_BART_MODEL,
    checkpoint: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    progress: bool = True,
) -> list[float]:
    """BART-score of each (source, target) pair, in input order (see the module doc).

    Padding is the cost to cut, and source and target lengths are unrelated, so the two
    halves of the model are batched separately (`_plan`): the encoder states of a chunk
    of samples are computed in batches of similar source length, then the decoder runs on
    batches of similar target and source length.  The LM head runs on real target
    positions only.  `batch_size` is the number of average-length samples per batch.

    On CPU two streams run batches at once, each with half of torch's threads (restored
    after): a small model's operations are too short to keep several threads busy, and
    Python's share of each step runs while the other stream computes.  Batches are the
    same either way, so the scores are too.
    """
    _check_pairs(srcs, tgts)
    if batch_size < 1:
        raise ImhiError(f"batch size must be at least 1, got {batch_size}")
    if not srcs:
        return []
    net, tokenizer = load_bart(model, checkpoint, device)
    check_bart_net(net)
    from tqdm.auto import tqdm

    ids = _token_ids(tokenizer, [*srcs, *tgts], _max_length(net))
    src_ids, tgt_ids = ids[: len(srcs)], ids[len(srcs):]
    plan = _plan([len(x) for x in src_ids], [len(x) for x in tgt_ids], batch_size,
                 net.config.d_model)
    scores = [0.0] * len(srcs)
    bar = tqdm(total=len(srcs), desc="BART-score", unit="pair", leave=False,
               disable=not progress or None)
    lock, stop = threading.Lock(), threading.Event()

    def record(idx: list[int], values: list[float]) -> None:
        with lock:  # two streams may report at once
            for i, value in zip(idx, values, strict=True):
                scores[i] = value
            bar.update(len(idx))

    def task(fn: Callable[..., None], *args) -> Callable[[], None]:
        def run() -> None:
            if stop.is_set():  # another batch failed: the rest are not worth running
                return
            try:
                with torch.inference_mode():  # thread-local: entered in each worker
                    fn(net, *args)
            except BaseException:
                stop.set()
                raise
        return run

    threads = torch.get_num_threads()
    streams = 2 if next(net.parameters()).device.type == "cpu" and threads >= 2 else 1
    pool = None
    if streams > 1:
        from concurrent.futures import ThreadPoolExecutor

        torch.set_num_threads(threads // streams)
        pool = ThreadPoolExecutor(streams, thread_name_prefix="bart-score")

    def run_all(tasks: list[Callable[[], None]]) -> None:
        if pool is None:
            for fn in tasks:
                fn()
            return
        for future in [pool.submit(fn) for fn in tasks]:
            future.result()

    try:
        with bar:
            for encode, decode in plan:
                states: dict[int, torch.Tensor] = {}
                run_all([task(_encode, idx, src_ids, states) for idx in encode])
                run_all([task(_decode, idx, src_ids, tgt_ids, states, record)
                         for idx in decode])
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)
    return scores


# --------------------------------------------------------------------------------------
# Scores kept for the next caller
# --------------------------------------------------------------------------------------

# Under `imhi-bench eval --quality bart` the tasks' `bart_score` aggregation (inside lm-eval)
# and then the score pipeline score the same (generation, gold) pairs with the same model:
# the second call is served from here.  Keyed per pair, so order and subsets do not matter
# (a pair's score does not depend on its batch, see the module doc).
_KEPT: dict[tuple[str, str | None], dict[bytes, float]] = {}
_KEPT_MODELS = 2  # (model, checkpoint) pairs kept, the least recently used dropped first
_KEPT_PAIRS = 200_000  # per model (~20 MB), more than all IMHI test sets of a format


def _pair_digest(src: str, tgt: str) -> bytes:
    h = hashlib.blake2b(f"{len(src)}:".encode(), digest_size=16)
    h.update(src.encode("utf-8", "surrogatepass"))
    h.update(tgt.encode("utf-8", "surrogatepass"))
    return h.digest()


def cached_bart_scores(srcs: Sequence[str], tgts: Sequence[str], *,
                       model: str = DEFAULT_BART_MODEL, checkpoint: str | None = None,
                       **options: Any) -> list[float]:
    """`bart_scores` (same options), computing only the pairs this process has not scored
    yet with the same model and checkpoint; the others are handed back as computed then."""
    _check_pairs(srcs, tgts)
    key = (model_key(model), model_key(checkpoint) if checkpoint else None)
    kept = _KEPT.pop(key, {})
    _KEPT[key] = kept  # now the most recently used
    while len(_KEPT) > _KEPT_MODELS:
        del _KEPT[next(iter(_KEPT))]
    digests = [_pair_digest(s, t) for s, t in zip(srcs, tgts)]
    todo = {d: i for i, d in enumerate(digests) if d not in kept}  # a repeated pair once
    fresh: dict[bytes, float] = {}
    if todo:
        idx = list(todo.values())
        fresh = dict(zip(todo, bart_scores([srcs[i] for i in idx], [tgts[i] for i in idx],
                                           model=model, checkpoint=checkpoint, **options)))
    out = [fresh[d] if d in fresh else kept[d] for d in digests]
    if len(kept) + len(fresh) > _KEPT_PAIRS:
        kept.clear()
    kept.update(fresh)
    return out


def per_sample(generations: Sequence[str], golds: Sequence[str],
               options: QualityOptions) -> list[float]:
    """The table's function: BART-score of generation (source) against gold (target)."""
    return cached_bart_scores(generations, golds, model=options.bart_model,
                              checkpoint=options.bart_checkpoint,
                              batch_size=options.batch_size, device=options.device,
                              progress=options.progress)


def _encode(net, idx: list[int], src_ids: list[list[int]], states: dict[int, torch.Tensor]
            ) -> None:
    """Encoder states of the samples `idx`, unpadded, into `states`."""
    dev = next(net.parameters()).device
    ids = _pad([src_ids[i] for i in idx], net.config.pad_token_id, dev)
    mask = _key_mask(net, [len(src_ids[i]) for i in idx], dev)
    hidden = net.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    for row, i in enumerate(idx):
        states[i] = hidden[row, : len(src_ids[i])]


def _decode(net, idx: list[int], src_ids: list[list[int]], tgt_ids: list[list[int]],
            states: dict[int, torch.Tensor],
            record: Callable[[list[int], list[float]], None]) -> None:
    """Scores of the samples `idx` (encoded in `states`), handed to `record(idx, scores)`."""
    from transformers.models.bart.modeling_bart import shift_tokens_right

    pad = net.config.pad_token_id
    dev = next(net.parameters()).device
    enc = torch.nn.utils.rnn.pad_sequence([states.pop(i) for i in idx], batch_first=True)
    enc_mask = _key_mask(net, [len(src_ids[i]) for i in idx], dev)
    t_ids = _pad([tgt_ids[i] for i in idx], pad, dev)
    t_mask = _mask([len(tgt_ids[i]) for i in idx], dev)
    hidden = net.model.decoder(
        input_ids=shift_tokens_right(t_ids, pad, net.config.decoder_start_token_id),
        encoder_hidden_states=enc, encoder_attention_mask=enc_mask, use_cache=False,
    ).last_hidden_state
    keep = t_mask.bool()
    real, gold = hidden[keep], t_ids[keep]
    # The LM head is a vocabulary-sized matmul: only on real target positions.
    nll = torch.cat([
        torch.nn.functional.cross_entropy(
            _logits(net, real[r: r + _HEAD_ROWS]).float(), gold[r: r + _HEAD_ROWS],
            reduction="none")
        for r in range(0, len(gold), _HEAD_ROWS)
    ])
    total = torch.zeros(len(idx), dtype=nll.dtype, device=nll.device)
    total.index_add_(0, keep.nonzero()[:, 0], nll)
    record(idx, (-total / t_mask.sum(dim=1)).tolist())


def _logits(net, hidden: torch.Tensor) -> torch.Tensor:
    """BART's LM head plus its `final_logits_bias`; a plain linear head takes the bias in
    its matmul, which saves a pass over the (positions, vocabulary) logits."""
    head, bias = net.lm_head, net.final_logits_bias[0]
    if type(head) is torch.nn.Linear and head.bias is None:
        return torch.nn.functional.linear(hidden, head.weight, bias)
    return head(hidden) + bias


def reference_scores(net, tokenizer, srcs: Sequence[str], tgts: Sequence[str],
                     batch_size: int = 4) -> list[float]:
    """neulab BARTScorer.score as MentaLLaMA runs it: file order, batch 4, no_grad."""
    _check_pairs(srcs, tgts)
    loss_fct = torch.nn.NLLLoss(reduction="none", ignore_index=net.config.pad_token_id)
    lsm = torch.nn.LogSoftmax(dim=1)
    dev = next(net.parameters()).device
    out: list[float] = []
    for i in range(0, len(srcs), batch_size):
        src_list, tgt_list = list(srcs[i: i + batch_size]), list(tgts[i: i + batch_size])
        with torch.no_grad():
            enc_src = tokenizer(src_list, max_length=MAX_LENGTH, truncation=True, padding=True,
                                return_tensors="pt")
            enc_tgt = tokenizer(tgt_list, max_length=MAX_LENGTH, truncation=True, padding=True,
                                return_tensors="pt")
            tgt_tokens = enc_tgt["input_ids"].to(dev)
            tgt_len = enc_tgt["attention_mask"].sum(dim=1).to(dev)
            output = net(input_ids=enc_src["input_ids"].to(dev),
                         attention_mask=enc_src["attention_mask"].to(dev), labels=tgt_tokens)
            logits = output.logits.view(-1, net.config.vocab_size)
            loss = loss_fct(lsm(logits), tgt_tokens.view(-1)).view(tgt_tokens.shape[0], -1)
            loss = loss.sum(dim=1) / tgt_len
            out += [-x.item() for x in loss]
    return out
