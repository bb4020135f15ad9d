"""The prompt a model sees for a query, as text and as token ids.

`imhi-bench eval` (through lm-eval and `imhi_bench.models.hf`) and `imhi-bench train` both
go through here, so a checkpoint is trained on byte for byte the prompt it is evaluated on
(a test compares them with what an eval run records).
"""

from __future__ import annotations

from collections.abc import Sequence


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, query: str, *, chat: bool, system_prompt: str | None = None) -> str:
    """What lm-eval builds for a zero-shot generation task: without a chat template the
    system prompt and the query joined as they are; with one, the tokenizer's template over
    [system, user] with the generation prompt (and without the system turn when the template
    refuses one, as lm-eval retries)."""
    if not chat:
        return (system_prompt or "") + query
    import jinja2

    messages = [{"role": "user", "content": query}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    kwargs = {"tokenize": False, "add_generation_prompt": True, "continue_final_message": False}
    try:
        return tokenizer.apply_chat_template(messages, **kwargs)
    except jinja2.exceptions.TemplateError:
        return tokenizer.apply_chat_template(messages[-1:], **kwargs)


def encode_prompts(tokenizer, texts: Sequence[str], *, causal: bool = True,
                   add_bos_token: bool | None = None) -> list[list[int]]:
    """Token ids of prompts, one batched tokenizer call per kind: the tokenizer's own
    special tokens (BOS for Llama), except that a prompt already starting with BOS (a
    chat-templated one) gets no second; `add_bos_token` forces BOS on or off (lm-eval's
    option of that name)."""
    bos = getattr(tokenizer, "bos_token", None)
    plain = {"add_special_tokens": add_bos_token} if causal and add_bos_token is not None else {}
    has_bos = [causal and bool(bos) and t.startswith(bos) for t in texts]
    ids: list[list[int] | None] = [None] * len(texts)
    for flag, kw in ((False, plain), (True, {"add_special_tokens": False})):
        idx = [i for i, h in enumerate(has_bos) if h == flag]
        if idx:
            enc = tokenizer([texts[i] for i in idx], **kw)["input_ids"]
            for i, e in zip(idx, enc, strict=True):
                ids[i] = list(e)
    return ids  # type: ignore[return-value]


def pad_prompts(seqs: Sequence[Sequence[int]], pad_id: int, *, causal: bool = True):
    """(input_ids, attention_mask) tensors of a batch of prompts: causal prompts are padded
    on the left, so every row continues at its end; encoder prompts on the right, since
    BART-style learned positions would shift under left padding."""
    import torch

    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        start = width - len(s) if causal else 0
        input_ids[row, start:start + len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[row, start:start + len(s)] = 1
    return input_ids, mask
