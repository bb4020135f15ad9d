"""The Hugging Face backend of `imhi-bench eval`: lm-eval's HFLM with a faster generate loop.

Registered with lm-eval as `imhi-hf`.  Loading (dtype, revision, PEFT adapter, device,
tokenizer, padding token) is HFLM's; only `generate_until` is replaced, because IMHI is all
long-prompt generation and HFLM's loop leaves speed on the table:

- every prompt is tokenised once, in one batched call, then sorted longest first, so a
  batch pads to nearly its own length (IMHI posts run from 20 to 2,000 tokens);
- with `batch_size="auto"` a batch is sized by a token budget (padded prompt + new tokens)
  rather than a fixed count: many short prompts go together, few long ones.  On CUDA the
  budget comes from free memory and the KV-cache size per token; a CUDA out-of-memory
  error halves the batch and retries;
- stop strings use transformers' StopStringCriteria (built once), which finishes each
  sequence on its own (HFLM's criterion only stops when every sequence of the batch hit
  the same string, decoding the batch at every step to find out);
- encoder-decoder prompts are padded on the right, since BART-style learned positions
  would shift under left padding.

`generate_seconds` accumulates the wall time spent inside `model.generate` (the benchmark
reports the share of time outside it).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from tqdm import tqdm
from transformers import StoppingCriteriaList, StopStringCriteria

from imhi_bench.models.batching import budget_batches
from imhi_bench.models.prompts import encode_prompts, pad_prompts

# Token budget per batch on CPU.  Measured on a shared 2-core CPU with a tiny Llama on 400
# DR + SAD prompts (best of 3, 32 new tokens): 4096 -> 38.5 s, 8192 -> 34.3 s,
# 16384 -> 18.7 s, 32768 (cap 128) -> 19.0 s; batches of 8 in file order: 59.1 s.
CPU_TOKEN_BUDGET = 16384
# Share of free GPU memory (of available RAM on CPU) a batch's KV cache and activations
# may take.
GPU_MEMORY_SHARE = 0.6
CPU_MEMORY_SHARE = 0.25


def _available_ram() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not Linux
        return None


@register_model("imhi-hf")
class ImhiHFLM(HFLM):
    def __init__(self, *args, max_batch_tokens: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_batch_tokens = int(max_batch_tokens) if max_batch_tokens else None
        self.generate_seconds = 0.0
        self.batch_sizes_used: list[int] = []
        self._stop_cache: dict[tuple[str, ...], StopStringCriteria] = {}

    # ------------------------------------------------------------------ batching
    def _token_budget(self) -> int:
        if self.max_batch_tokens:
            return self.max_batch_tokens
        per_token = self._bytes_per_token()
        if self.device.type != "cuda":
            ram = _available_ram()
            fits = int(ram * CPU_MEMORY_SHARE / per_token) if ram else CPU_TOKEN_BUDGET
            return max(1024, min(CPU_TOKEN_BUDGET, fits))
        free, _ = torch.cuda.mem_get_info(self.device)
        return max(1024, int(free * GPU_MEMORY_SHARE / per_token))

    def _bytes_per_token(self) -> int:
        """Memory one token of a batch needs: K and V in every layer, plus the widest
        prefill activations of one layer."""
        cfg = getattr(self.config, "text_config", None) or self.config
        layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", 32)
        hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", 4096)
        heads = getattr(cfg, "num_attention_heads", None) or 32
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or hidden // heads
        inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
        elem = torch.finfo(self.model.dtype).bits // 8 if self.model.dtype.is_floating_point else 2
        return (2 * layers * kv_heads * head_dim + 3 * inter + 4 * hidden) * elem

    def _batches(self, order: list[int], lengths: list[int], max_new: int) -> list[list[int]]:
        """Consecutive runs of `order` (longest prompt first) that fit the batch policy."""
        if self.batch_size != "auto":
            n = int(self.batch_size)
            return [order[i:i + n] for i in range(0, len(order), n)]
        padded = [n + max_new for n in lengths]
        return budget_batches(order, padded, self._token_budget(), int(self.max_batch_size or 64))

    # ------------------------------------------------------------------ encoding
    def _encode_all(self, contexts: list[str], max_ctx: int) -> list[list[int]]:
        """Token ids of every prompt (one batched tokenizer call), left-truncated."""
        ids = encode_prompts(self.tokenizer, contexts, causal=self.backend == "causal",
                             add_bos_token=self.add_bos_token)
        return [e[-max_ctx:] if max_ctx and len(e) > max_ctx else e for e in ids]

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, mask = pad_prompts(seqs, self.tokenizer.pad_token_id,
                                      causal=self.backend == "causal")
        return input_ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------ generation
    def _stop_criteria(self, stop: tuple[str, ...]) -> StopStringCriteria | None:
        """transformers' stop-string criterion, built once: building it scans the whole
        vocabulary (tens of ms per batch otherwise)."""
        if not stop:
            return None
        if self._stop_cache.get(stop) is None:
            self._stop_cache[stop] = StopStringCriteria(self.tokenizer, list(stop))
        return self._stop_cache[stop]

    def _generate_batch(self, seqs: list[list[int]], max_new: int, stop: list[str],
                        kwargs: dict) -> list[str]:
        input_ids, mask = self._pad(seqs)
        gen = dict(kwargs)
        if not gen.get("do_sample"):
            gen.pop("temperature", None)
            gen.pop("top_p", None)
            gen.pop("top_k", None)
        criteria = self._stop_criteria(tuple(s for s in stop if s))
        if criteria is not None:
            gen["stopping_criteria"] = StoppingCriteriaList([criteria])
        t0 = time.perf_counter()
        with torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new,
                pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **gen,
            )
        self.generate_seconds += time.perf_counter() - t0
        if self.backend == "causal":
            out = out[:, input_ids.shape[1]:]
        texts = self.tokenizer.batch_decode(out.tolist(), skip_special_tokens=True)
        think = self.think_end_token if isinstance(self.think_end_token, str) else None
        return [postprocess_generated_text(t, stop, think) for t in texts]

    def _generate_split(self, seqs: list[list[int]], max_new: int, stop: list[str],
                        kwargs: dict) -> list[str]:
        """Generate one batch; on CUDA out-of-memory, halve it (and later budgets)."""
        try:
            return self._generate_batch(seqs, max_new, stop, kwargs)
        except torch.cuda.OutOfMemoryError:
            if len(seqs) == 1:
                raise
            torch.cuda.empty_cache()
            self.max_batch_tokens = max(1024, self._token_budget() // 2)
            half = len(seqs) // 2
            return (self._generate_split(seqs[:half], max_new, stop, kwargs)
                    + self._generate_split(seqs[half:], max_new, stop, kwargs))

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        args = [r.args for r in requests]
        results: list[str | None] = [None] * len(args)
        by_kwargs: dict[str, list[int]] = defaultdict(list)
        for i, (_, gk) in enumerate(args):
            by_kwargs[json.dumps(gk, sort_keys=True, default=str)].append(i)
        with tqdm(total=len(args), desc="Generating", unit="sample",
                  disable=disable_tqdm or self.rank != 0) as pbar:
            for idxs in by_kwargs.values():
                self._generate_group(args, idxs, results, pbar)
        return results  # type: ignore[return-value]

    def _generate_group(self, args: list, idxs: list[int], results: list, pbar) -> None:
        """Requests `idxs` (same generation kwargs): longest first, batched, generated;
        each result reaches lm-eval's cache hook as soon as its batch is done."""
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        kwargs = dict(normalize_gen_kwargs(args[idxs[0]][1], self.max_gen_toks))
        stop = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        max_new = int(kwargs.pop("max_gen_toks"))
        kwargs.pop("max_length", None)
        max_ctx = self.max_length - max_new if self.backend == "causal" else self.max_length
        ids = self._encode_all([args[i][0] for i in idxs], max_ctx)
        lengths = [len(x) for x in ids]
        order = sorted(range(len(idxs)), key=lambda k: -lengths[k])
        for batch in self._batches(order, lengths, max_new):
            self.batch_sizes_used.append(len(batch))
            texts = self._generate_split([ids[k] for k in batch], max_new, stop, kwargs)
            for k, text in zip(batch, texts, strict=True):
                results[idxs[k]] = text
                self.cache_hook.add_partial("generate_until", args[idxs[k]], text)
            pbar.update(len(batch))
