"""What a run's prompts and decoding are, where `imhi-bench eval` decides them: the chat
template, the few-shot seed and the generation length.  Each is a field of the run's
protocol (`imhi_bench.core.protocol`); the defaults are the paper's."""

from __future__ import annotations

from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.core.protocol import DEFAULT_FEWSHOT_SEED
from imhi_bench.models.options import ModelOptions, is_api


def use_chat_template(opts, lm, log=print) -> bool:
    """Whether prompts go through the chat template: the API's nature, else the flag, else
    the checkpoint's training card, else no (the paper's raw query)."""
    backend = opts.model.backend
    if backend == "openai-chat":
        if opts.chat_template is False:
            raise ImhiError("--no-chat-template does not apply to openai-chat, which sends "
                            "messages: use --backend openai-completions for plain prompts")
        return True
    if backend == "openai-completions":
        if opts.chat_template:
            raise ImhiError("openai-completions sends plain prompts: use --backend "
                            "openai-chat to send messages")
        return False
    from imhi_bench.models.prompts import has_chat_template

    has = has_chat_template(getattr(lm, "tokenizer", None))
    if opts.chat_template and not has:
        raise ImhiError(f"--chat-template: {opts.model.model} has no chat template in its "
                        "tokenizer config; drop the flag to send the prompts as they are")
    if opts.chat_template is None:
        trained = (_training_card(opts.model) or {}).get("chat_template")
        if trained is True and has:
            log("The training card says this checkpoint was trained with its chat template: "
                "evaluating with it too (another protocol than the paper's raw query; "
                "--no-chat-template sends the raw query).")
            return True
        return False
    return bool(opts.chat_template)


def _training_card(m: ModelOptions) -> dict | None:
    """The card `imhi-bench train` wrote into the adapter or model folder, if any."""
    from imhi_bench.models.card import read_card
    from imhi_bench.models.options import local_model_dir

    if is_api(m):
        return None
    return read_card(m.adapter or local_model_dir(m.model))


def fewshot_seed(opts) -> int:
    # lm-eval's own default, so `eval --num-fewshot K` and `lm_eval --num_fewshot K` give
    # the same demonstrations (the protocol's few-shot seed)
    return DEFAULT_FEWSHOT_SEED if opts.fewshot_seed is None else opts.fewshot_seed


def generation_limits(opts, lm, tasks, data_dir: Path, log) -> dict[str, int]:
    """Per task: --max-new-tokens, else the longest released gold response in the model's
    tokens (`runs.lengths`)."""
    if opts.max_new_tokens:
        return dict.fromkeys(tasks, int(opts.max_new_tokens))
    from imhi_bench.runs.lengths import gold_max_tokens

    context = None
    try:
        context = int(lm.max_length) if not is_api(opts.model) else None
    except (AttributeError, TypeError, ValueError):
        pass
    tok = None if is_api(opts.model) else getattr(lm, "tokenizer", None)
    limits, notes = gold_max_tokens(tasks, data_dir, tok, context)
    for note in notes:
        log(note)
    return limits
