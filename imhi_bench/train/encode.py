"""Training examples as token ids: the prompt exactly as `imhi-bench eval` sends it, the
response with the end-of-sequence token, and the loss on the response only.

- The prompt is rendered and tokenised by `imhi_bench.models.prompts`, the code eval uses,
  so train and eval agree byte for byte (raw query, or the tokenizer's chat template).
- The response is tokenised on its own, as the model will produce it after the prompt,
  and EOS is appended and kept in the loss: its label is its token id even when the pad
  token is EOS (padding is masked by position in the collator, never by token id), so a
  trained model learns to stop.
- When prompt + response exceed `max_length`, the post inside the prompt is shortened
  (re-rendered and re-tokenised until it fits), never the response; a response that cannot
  fit even with an empty post drops its example, and the drop is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imhi_bench.benchmark.data import split_post
from imhi_bench.models.prompts import encode_prompts, render_prompt
from imhi_bench.train.data import Example

IGNORE = -100  # label of a token outside the loss
_MARGIN = 4  # tokens of slack when re-cutting a post (token boundaries move when re-joined)


@dataclass(frozen=True)
class PromptStyle:
    chat: bool
    system_prompt: str | None = None
    causal: bool = True


@dataclass
class Encoded:
    rows: list[dict]  # input_ids + labels (causal) or input_ids + labels as targets (seq2seq)
    truncated: int = 0  # examples whose post was shortened
    dropped: int = 0  # examples whose response alone does not fit


def _prompt_ids(tokenizer, queries: Sequence[str], style: PromptStyle) -> list[list[int]]:
    texts = [render_prompt(tokenizer, q, chat=style.chat, system_prompt=style.system_prompt)
             for q in queries]
    return encode_prompts(tokenizer, texts, causal=style.causal)


def _response_ids(tokenizer, responses: Sequence[str], causal: bool) -> list[list[int]]:
    if not causal:  # seq2seq targets carry the tokenizer's own special tokens (BART <s>..</s>)
        return [list(ids) for ids in tokenizer(text_target=list(responses))["input_ids"]]
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token: set one before training")
    ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    return [list(r) + [eos] for r in ids]


def _fit(tokenizer, ex: Example, prompt: list[int], budget: int,
         style: PromptStyle) -> list[int] | None:
    """The prompt with its post shortened until it is at most `budget` tokens, or None."""
    before, post, after = split_post(ex.query)
    post_ids = tokenizer(post, add_special_tokens=False)["input_ids"]
    keep = len(post_ids) - (len(prompt) - budget) - _MARGIN
    while keep >= 0:
        short = tokenizer.decode(post_ids[:keep], skip_special_tokens=True)
        prompt = _prompt_ids(tokenizer, [before + short + after], style)[0]
        if len(prompt) <= budget:
            return prompt
        keep -= len(prompt) - budget + _MARGIN
    return None


def encode_examples(tokenizer, examples: Sequence[Example], style: PromptStyle,
                    max_length: int) -> Encoded:
    """Token ids and labels of `examples` (see the module docstring)."""
    if not examples:  # tokenizers take an empty batch for a malformed input
        return Encoded([])
    prompts = _prompt_ids(tokenizer, [e.query for e in examples], style)
    responses = _response_ids(tokenizer, [e.response for e in examples], style.causal)
    out = Encoded([])
    for ex, prompt, response in zip(examples, prompts, responses, strict=True):
        # causal: prompt and response share max_length; seq2seq: each side has its own
        budget = max_length - len(response) if style.causal else max_length
        if len(response) > max_length or budget < 1:
            out.dropped += 1
            continue
        if len(prompt) > budget:
            prompt = _fit(tokenizer, ex, prompt, budget, style)
            if prompt is None:
                out.dropped += 1
                continue
            out.truncated += 1
        if style.causal:
            out.rows.append({"input_ids": prompt + response,
                             "labels": [IGNORE] * len(prompt) + response})
        else:
            out.rows.append({"input_ids": prompt, "labels": response})
    return out
