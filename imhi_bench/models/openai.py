"""OpenAI-compatible API backends of `imhi-bench eval`, through the `openai` client.

Registered with lm-eval as `imhi-openai-chat` (chat completions: lm-eval renders each
prompt as a JSON list of messages, system prompt included) and `imhi-openai-completions`
(plain prompts).  Works with OpenAI and with self-hosted servers that speak the same API
(vLLM serve, TGI, llama.cpp server, ...).

- The key is read from the environment variable named by `api_key_env`, here and nowhere
  else; it is never logged or written (lm-eval records only the variable's name).
- Retries: the client's own, with exponential backoff (and the server's Retry-After) on
  408/409/429/5xx, connection errors and timeouts, `max_retries` times; each try waits at
  most `timeout` seconds for the answer (`--request-timeout`), so a server that accepts the
  connection and never answers fails the run in one line, in bounded time.
- `num_concurrent` requests in flight at once, from daemon threads; a progress bar counts
  finished requests, and each result reaches the generation cache as soon as it arrives.
  The main thread waits on them in a way a signal interrupts, and nothing waits for a
  request still in flight, so Ctrl-C or SIGTERM stops the run within a second, keeping
  every generation already cached.
- An answer that is not an OpenAI response (not JSON, an HTML page, no choices) and a
  server error that echoes the key or the URL's credentials are one line, masked.
"""

from __future__ import annotations

import json
import queue
import threading

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.urls import mask_text, mask_url
from imhi_bench.models.options import DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT

MAX_STOP = 4  # the OpenAI API accepts at most four stop sequences
WAIT_SLICE_S = 0.5  # the main thread's wait for the next answer, between signal checks


class BadAnswer(Exception):
    """The server answered, but not with an OpenAI completion."""


class _OpenAILM(LM):
    chat = False
    tokenizer = None

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        num_concurrent: int = 1,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
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
        self._key = key
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
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
            try:
                resp = self.client.chat.completions.create(messages=messages, **params)
            except ValueError as e:  # JSONDecodeError: a body that is not JSON
                raise BadAnswer(f"not JSON: {first_line(e, 80)}") from None
            text = _text(resp, chat=True)
        else:
            try:
                resp = self.client.completions.create(prompt=context, **params)
            except ValueError as e:
                raise BadAnswer(f"not JSON: {first_line(e, 80)}") from None
            text = _text(resp, chat=False)
        return postprocess_generated_text(text, stop, None)

    def _error(self, e: BaseException) -> ImhiError:
        """One line for a failed request, with the URL's credentials and the key masked
        (a server may echo either back)."""
        import openai

        where = mask_url(self.base_url) or "the OpenAI API"
        tries = f"{self.max_retries + 1} tr{'y' if self.max_retries == 0 else 'ies'}"
        if isinstance(e, openai.AuthenticationError):
            text = (f"{where} rejected the API key (401): check the key in the variable named "
                    "by --api-key-env")
        elif isinstance(e, openai.APITimeoutError):
            text = (f"{where} did not answer within --request-timeout {self.timeout:g} s "
                    f"({tries}): check the server's logs, or raise --request-timeout for a "
                    "slow model")
        elif isinstance(e, openai.APIConnectionError):
            text = (f"cannot reach the API at {where} ({first_line(e)}): check --base-url and "
                    "that the server is running")
        elif isinstance(e, openai.APIStatusError):
            msg = first_line(Exception(getattr(e, "message", e)), 200)
            text = (f"{where} answered HTTP {e.status_code} after {tries} ({msg}): check "
                    "--model and the server's logs")
        elif isinstance(e, BadAnswer):
            kind = "chat completion" if self.chat else "completion"
            text = (f"{where} answered with something that is not an OpenAI {kind} ({e}): "
                    "check that --base-url is an OpenAI-compatible server's /v1 endpoint")
        else:
            text = f"request to {where} failed: {type(e).__name__}: {first_line(e)}"
        return ImhiError(mask_text(text, [self._key if self._key != "EMPTY" else None]))

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        args = [r.args for r in requests]
        out: list[str | None] = [None] * len(args)
        with tqdm(total=len(args), desc="Requests", unit="req", disable=disable_tqdm) as pbar:
            for i, text in self._answers(args):
                out[i] = text
                self.cache_hook.add_partial("generate_until", args[i], text)
                pbar.update(1)
        return out  # type: ignore[return-value]

    def _answers(self, args: list):
        """(index, text) of each request as it finishes, from `num_concurrent` daemon
        threads.  Not a ThreadPoolExecutor: leaving one (and interpreter exit) joins its
        threads, each maybe inside a request that waits out --request-timeout times the
        retries; a daemon thread is simply left behind when the run stops."""
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(args)):
            todo.put(i)
        done: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((i, self._call(*args[i]), None))
                except Exception as e:  # noqa: BLE001 - reported by the main thread
                    done.put((i, None, e))

        for k in range(min(self.num_concurrent, len(args))):
            threading.Thread(target=work, daemon=True, name=f"imhi-api-{k}").start()
        try:
            for _ in range(len(args)):
                while True:  # short waits: a signal's exception is raised between them
                    try:
                        i, text, error = done.get(timeout=WAIT_SLICE_S)
                        break
                    except queue.Empty:
                        continue
                if error is not None:
                    raise self._error(error) from None
                yield i, text
        finally:
            stop.set()  # the threads take no new request; those in flight are abandoned


def _text(resp, *, chat: bool) -> str:
    """The generated text of a completion, or BadAnswer saying what the answer lacks (the
    client hands back a string for an HTML page, and [] choices index badly)."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        shown = " ".join(str(resp).split())[:60]
        raise BadAnswer(f"no choices in {shown!r}" if shown else "an empty body")
    if not choices:
        raise BadAnswer("an empty choices list")
    first = choices[0]
    text = getattr(getattr(first, "message", None), "content", None) if chat else \
        getattr(first, "text", None)
    if text is not None and not isinstance(text, str):
        raise BadAnswer(f"its text is a {type(text).__name__}, not a string")
    return text or ""


@register_model("imhi-openai-chat")
class OpenAIChatLM(_OpenAILM):
    chat = True


@register_model("imhi-openai-completions")
class OpenAICompletionsLM(_OpenAILM):
    chat = False
