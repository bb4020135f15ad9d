"""OpenAI-compatible API backends of `imhi-bench eval`, through the `openai` client.

Registered with lm-eval as `imhi-openai-chat` (chat completions: lm-eval renders each
prompt as a JSON list of messages, system prompt included) and `imhi-openai-completions`
(plain prompts).  Works with OpenAI and with self-hosted servers that speak the same API
(vLLM serve, TGI, llama.cpp server, ...).

- The key is read from the environment variable named by `api_key_env`, here and nowhere
  else; it is never logged or written (lm-eval records only the variable's name).
- Retries: the client's own, with exponential backoff (and the server's Retry-After) on
  408/409/429/5xx and connection errors, `max_retries` times.
- `num_concurrent` requests in flight at once, from a thread pool; a progress bar counts
  finished requests, and each result reaches the generation cache as soon as it arrives.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor, as_completed

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm

from imhi_bench.core.errors import ImhiError

MAX_STOP = 4  # the OpenAI API accepts at most four stop sequences


class _OpenAILM(LM):
    chat = False
    tokenizer = None

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        num_concurrent: int = 1,
        max_retries: int = 5,
        timeout: float = 600.0,
        seed: int | None = None,
        max_gen_toks: int = 256,
        **_ignored,  # batch_size, device, ... from lm-eval's generic constructor call
    ) -> None:
        super().__init__()
        import openai

        from imhi_bench.models.options import ModelOptions, api_key

        key = api_key(ModelOptions(model=model, backend="openai-chat", base_url=base_url,
                                   api_key_env=api_key_env))
        self.model = model
        self.base_url = base_url
        self.num_concurrent = max(1, int(num_concurrent))
        self.seed = seed
        self.max_gen_toks = max_gen_toks
        self.client = openai.OpenAI(api_key=key, base_url=base_url,
                                    max_retries=int(max_retries), timeout=float(timeout))

    # lm-eval asks these of a chat-capable model
    @property
    def tokenizer_name(self) -> str:
        return f"{'chat' if self.chat else 'completions'}:{self.model}"

    def chat_template(self, chat_template=False) -> str:
        return ""

    def apply_chat_template(self, chat_history: list[dict[str, str]],
                            add_generation_prompt: bool = True) -> str:
        return json.dumps(chat_history, ensure_ascii=False)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("IMHI tasks only generate text")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("IMHI tasks only generate text")

    # ------------------------------------------------------------------ requests
    def _call(self, context: str, gen_kwargs: dict) -> str:
        kw = dict(normalize_gen_kwargs(gen_kwargs, self.max_gen_toks))
        stop = [s for s in kw.pop("until", []) if s][:MAX_STOP]
        params = {"model": self.model, "max_tokens": int(kw.pop("max_gen_toks")),
                  "temperature": float(kw.get("temperature", 0.0))}
        if stop:
            params["stop"] = stop
        if self.seed is not None:
            params["seed"] = int(self.seed)
        if self.chat:
            try:
                messages = json.loads(context)  # lm-eval's chat rendering, see above
            except ValueError:
                messages = None
            if not isinstance(messages, list):
                messages = [{"role": "user", "content": context}]
            resp = self.client.chat.completions.create(messages=messages, **params)
            text = resp.choices[0].message.content or ""
        else:
            resp = self.client.completions.create(prompt=context, **params)
            text = resp.choices[0].text or ""
        return postprocess_generated_text(text, stop, None)

    def _error(self, e: Exception) -> ImhiError:
        import openai

        where = self.base_url or "the OpenAI API"
        if isinstance(e, openai.AuthenticationError):
            return ImhiError(f"{where} rejected the API key (401): check the key in the "
                             "variable named by --api-key-env")
        if isinstance(e, openai.APIConnectionError):
            return ImhiError(f"cannot reach the API at {where} ({e}): check --base-url and "
                             "that the server is running")
        if isinstance(e, openai.APIStatusError):
            msg = str(getattr(e, "message", e)).splitlines()[0][:200]
            return ImhiError(f"{where} answered HTTP {e.status_code} after retries ({msg}): "
                             "check --model and the server's logs")
        return ImhiError(f"request to {where} failed: {type(e).__name__}: {e}")

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        import openai

        args = [r.args for r in requests]
        out: list[str | None] = [None] * len(args)
        with tqdm(total=len(args), desc="Requests", unit="req", disable=disable_tqdm) as pbar, \
                ThreadPoolExecutor(max_workers=self.num_concurrent) as pool:
            futures = {pool.submit(self._call, c, g): i for i, (c, g) in enumerate(args)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        out[i] = fut.result()
                    except openai.OpenAIError as e:
                        raise self._error(e) from None
                    self.cache_hook.add_partial("generate_until", args[i], out[i])
                    pbar.update(1)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return out  # type: ignore[return-value]


@register_model("imhi-openai-chat")
class OpenAIChatLM(_OpenAILM):
    chat = True


@register_model("imhi-openai-completions")
class OpenAICompletionsLM(_OpenAILM):
    chat = False
