"""The model backends of `imhi-bench eval`: a lazy registry, name -> lm-eval model class.

As in lm-eval's MODEL_MAPPING, every entry names its class and its argument builder as
"module:attribute" strings, imported only when a run uses that backend: the openai client
is slow to import and vLLM exists on GPU machines only, and `imhi-bench --help` or a bad
option must not pay for either.  Adding a backend is one entry here (plus its class, and its
argument builder in `imhi_bench.models.args`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.core.lazy import resolve

if TYPE_CHECKING:
    from imhi_bench.models.options import ModelOptions


@dataclass(frozen=True)
class Backend:
    name: str
    """What `--backend` takes."""
    model_class: str
    """"module:Class" of the lm-eval model (an `lm_eval.api.model.LM`), imported on first use."""
    lm_eval_name: str
    """The class's name in lm-eval's own registry, recorded in the run's lm-eval config."""
    build_args: str
    """"module:function" turning `ModelOptions` into the class's constructor arguments."""
    api: bool = False
    """Served over an API: no local weights, adapter, dtype or device."""
    default_format: str = "instruction"
    """IMHI format its models were trained on (MentalBART/MentalT5: completion)."""
    help: str = ""


_ENTRIES = (
    Backend("hf", "imhi_bench.models.hf:ImhiHFLM", "imhi-hf", "imhi_bench.models.args:hf_args",
            help="causal LM with transformers (default)"),
    Backend("hf-seq2seq", "imhi_bench.models.hf:ImhiHFLM", "imhi-hf",
            "imhi_bench.models.args:hf_args", default_format="completion",
            help="encoder-decoder such as MentalBART/MentalT5 (completion format by default)"),
    Backend("vllm", "lm_eval.models.vllm_causallms:VLLM", "vllm",
            "imhi_bench.models.args:vllm_args", help="GPU only"),
    Backend("openai-chat", "imhi_bench.models.openai:OpenAIChatLM", "imhi-openai-chat",
            "imhi_bench.models.args:api_args", api=True),
    Backend("openai-completions", "imhi_bench.models.openai:OpenAICompletionsLM",
            "imhi-openai-completions", "imhi_bench.models.args:api_args", api=True,
            help="an OpenAI-compatible API"),
)
_REGISTRY: dict[str, Backend] = {b.name: b for b in _ENTRIES}

BACKENDS: tuple[str, ...] = tuple(_REGISTRY)
API_BACKENDS: tuple[str, ...] = tuple(b.name for b in _ENTRIES if b.api)
LOCAL_BACKENDS: tuple[str, ...] = tuple(b.name for b in _ENTRIES if not b.api)
BACKEND_HELP = "; ".join(f"{b.name}: {b.help}" for b in _ENTRIES if b.help).replace(
    "openai-completions:", "openai-chat / openai-completions:")


def backend(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ImhiError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}") from None


def model_class(name: str) -> type:
    """The backend's lm-eval model class (imports its module, registering it with lm-eval)."""
    return resolve(backend(name).model_class)


def model_args(opts: ModelOptions) -> tuple[str, dict]:
    """(lm-eval registry name, constructor arguments) of the backend.  No secrets: the API
    key is read by the model class from the environment variable named here."""
    entry = backend(opts.backend)
    return entry.lm_eval_name, resolve(entry.build_args)(opts)


def recorded_args(args: dict) -> dict:
    """Constructor arguments as a run records them: a base URL's credentials masked."""
    from imhi_bench.core.urls import mask_url

    return {k: mask_url(v) if k == "base_url" else v for k, v in args.items()}


def load_model(mopts: ModelOptions):
    """The lm-eval model object of the backend; loading errors become one line."""
    from imhi_bench.models.loading import damaged_weights_message, is_safetensors_error

    _, args = model_args(mopts)
    what = f"{mopts.model}" + (f" with adapter {mopts.adapter}" if mopts.adapter else "")
    try:
        return model_class(mopts.backend).create_from_arg_obj(args)
    except ImhiError:
        raise
    except (OSError, ValueError, RuntimeError, ImportError, TypeError) as e:
        raise ImhiError(f"cannot load model {what} ({mopts.backend} backend): "
                        f"{first_line(e)}") from None
    except Exception as e:
        # safetensors' error derives from Exception only; the header check in
        # models.options catches most damage first, this the rest (a shard in the cache)
        if not is_safetensors_error(e):
            raise
        raise ImhiError(f"cannot load model {what}: {damaged_weights_message(what)} "
                        f"({first_line(e)})") from None
