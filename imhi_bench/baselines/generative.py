"""Generative baselines: ChatGPT / GPT-4 zero- and few-shot over an OpenAI-compatible API,
LLaMA2-13B zero-shot on local weights (hf, or vllm on a GPU).

A spec becomes the options of `imhi-bench eval` (`eval_options`) and runs through
`imhi_bench.runs.evaluate.run_eval`: the same prompts, few-shot demonstrations, generation
cache (an interrupted baseline re-run generates only what is missing), scoring pipeline and
run folder as `eval`, with the whole spec in the run's provenance under "baseline".

Before an API run sends anything, `estimate` counts its requests and estimates its prompt
tokens as the characters of what each request carries (system prompt, demonstrations and
query) divided by 4, rounded up -- OpenAI's rule of thumb for English text, not a tokenizer
count; above the spec's `confirm_tokens` the run needs `--yes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.baselines.spec import BaselineSpec
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.urls import mask_url

CHAT_TEMPLATE = {"auto": None, "true": True, "false": False}
CHARS_PER_TOKEN = 4
TOKENS_HOW = "characters / 4 of the prompts as sent: system prompt, demonstrations and query"


def eval_options(spec: BaselineSpec, *, output: Path, data_dir: str | None = None,
                 cache_dir: str | None = None):
    """The `imhi-bench eval` options a generative spec stands for."""
    from imhi_bench.models.options import ModelOptions
    from imhi_bench.runs.evaluate import EvalOptions

    model = ModelOptions(model=spec.model, backend=spec.backend, dtype=spec.dtype,
                         base_url=spec.base_url, api_key_env=spec.api_key_env,
                         num_concurrent=spec.num_concurrent, seed=spec.seed,
                         timeout=spec.request_timeout, max_retries=spec.max_retries)
    return EvalOptions(
        model=model, tasks=spec.tasks, limit=spec.limit, max_new_tokens=spec.max_new_tokens,
        chat_template=CHAT_TEMPLATE[spec.chat_template], system_prompt=spec.system_prompt,
        seed=spec.seed, num_fewshot=spec.num_fewshot, fewshot_seed=spec.fewshot_seed,
        output=str(output), name=spec.name, data_dir=data_dir, cache_dir=cache_dir,
        extra_provenance={"baseline": spec.to_dict()},
    )


@dataclass(frozen=True)
class Estimate:
    requests: int
    chars: int

    @property
    def tokens(self) -> int:
        return math.ceil(self.chars / CHARS_PER_TOKEN)


def estimate(opts) -> Estimate:
    """Requests and prompt characters of an eval run (`EvalOptions`), from the data alone:
    each selected set's first `limit` queries, with the demonstrations lm-eval will put
    before each (the task's own sampler, so the same draw) and the system prompt."""
    from imhi_bench.benchmark.data import load_examples, resolve_data_dir
    from imhi_bench.runs.selection import select_tasks
    from imhi_bench.tasks.names import parse_task

    root = resolve_data_dir(opts.data_dir)
    system = len(opts.system_prompt or "")
    seed = opts.seed if opts.fewshot_seed is None else opts.fewshot_seed  # as run_eval draws
    requests = chars = 0
    for task in select_tasks(opts.tasks, opts.model.backend, opts.data_dir).tasks:
        s, fmt = parse_task(task)
        examples = load_examples(s.name, fmt, root)[:opts.limit]
        draw = _demonstrations(s.name, fmt, root, opts.num_fewshot, seed)
        for e in examples:
            requests += 1
            chars += system + len(e.query) + sum(
                len(q) + len(g) + 3 for q, g in draw(e.doc_id))  # " " and "\n\n" around
    return Estimate(requests, chars)


def _demonstrations(set_name: str, fmt: str, root: Path, k: int, seed: int | None):
    """doc_id -> the (query, gold) demonstrations the task's sampler gives that sample."""
    if k < 1:
        return lambda doc_id: []
    from imhi_bench.tasks.fewshot import DemoSampler, demonstration_docs
    from imhi_bench.tasks.names import DATA_DIR_METADATA

    docs = demonstration_docs([{"set": set_name, "format": fmt, DATA_DIR_METADATA: str(root)}])
    sampler = DemoSampler(docs, rnd=seed)
    return lambda doc_id: [(d["query"], d["gold"]) for d in
                           sampler.sample(k, eval_doc={"set": set_name, "doc_id": doc_id})]


def confirm(spec: BaselineSpec, est: Estimate, *, yes: bool, log=print) -> None:
    """Say what an API run will send; refuse (one line) above `confirm_tokens` without yes."""
    where = mask_url(spec.base_url) or "the OpenAI API"
    new = spec.max_new_tokens or "gold-max"
    log(f"{spec.name}: {est.requests} requests to {spec.model} at {where}, about "
        f"{est.tokens:,} prompt tokens ({TOKENS_HOW}), up to {new} new tokens each.")
    if est.tokens > spec.confirm_tokens and not yes:
        raise ImhiError(f"about {est.tokens:,} prompt tokens is above the spec's "
                        f"confirm_tokens={spec.confirm_tokens:,}: nothing was sent; pass --yes "
                        "to send them (or limit=N to try a few)")


def run_generative(spec: BaselineSpec, *, output: Path, data_dir: str | None = None,
                   cache_dir: str | None = None, yes: bool = False, log=print):
    """Run a generative spec through `run_eval`; API runs print their size first."""
    from imhi_bench.baselines.runner import BaselineRun
    from imhi_bench.models import options as model_options
    from imhi_bench.runs.evaluate import run_eval

    opts = eval_options(spec, output=output, data_dir=data_dir, cache_dir=cache_dir)
    if model_options.is_api(opts.model):
        model_options.check(opts.model)  # a missing key or server fails before the estimate
        confirm(spec, estimate(opts), yes=yes, log=log)
    run = run_eval(opts, log=log)
    return BaselineRun(run.run_dir, run.report, run.samples)
