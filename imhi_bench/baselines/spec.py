"""Baseline specs: what `imhi-bench baseline run SPEC [key=value ...]` reads (a spec shipped
in `specs/`, by name, or a YAML file).

One spec per baseline of the paper's Tables 2 and 3 (MentalRoBERTa fine-tuned, ChatGPT and
GPT-4 zero/few-shot, LLaMA2-13B zero-shot).  The paper publishes no hyper-parameters,
prompts, shot counts or demonstration choices for them, so every such choice is a field
here with a documented default (ours), and the whole spec goes into the run's provenance.
A run is recorded under `name` with `type` and `setting`, so the leaderboard shows it beside
the paper's row of the same baseline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imhi_bench.benchmark.sets import TRAINING_DATA
from imhi_bench.core import specfile
from imhi_bench.core.errors import ImhiError
from imhi_bench.models.options import DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT

RUNNERS = ("discriminative", "generative")
TYPES = ("discriminative", "API", "base")
SETTINGS = ("fine-tuned", "zero-shot", "few-shot")
CHAT = ("auto", "true", "false")
SPEC_DIR = Path(__file__).resolve().parent / "specs"  # shipped: `baseline list` shows them


@dataclass(frozen=True)
class BaselineSpec:
    name: str = ""
    """Leaderboard name of the run: the paper's row of the same baseline has this name
    (MentalRoBERTa, ChatGPT, GPT-4, LLaMA2-13B)."""
    runner: str = "generative"
    """`discriminative`: fine-tune a sequence classifier per set and predict the test posts
    (MentalRoBERTa); `generative`: a model answers the IMHI prompts through the backends of
    `imhi-bench eval`."""
    type: str = "base"
    """Model type recorded in the store: discriminative, API or base."""
    setting: str = "zero-shot"
    """Setting recorded in the store: fine-tuned, zero-shot or few-shot."""
    training_data: str | None = None
    """Training data recorded in the store (IMHI, IMHI-general or other), as the paper's row
    of the same baseline says; none: unknown."""
    description: str = ""
    """One line for `imhi-bench baseline list`."""
    # -- generative
    model: str = ""
    """Generative: the model folder, hub id, or the served model name of an API."""
    backend: str = "hf"
    """Generative: a backend of `imhi-bench eval` (hf, vllm, openai-chat, ...)."""
    tasks: str = "imhi"
    """Generative: IMHI tasks or groups, as `imhi-bench eval --tasks` takes them."""
    num_fewshot: int = 0
    """Generative: demonstrations per prompt (from train, else val, else expert posts; never a
    test post)."""
    fewshot_seed: int = 1234
    """Generative: seed of the demonstration draw (eval's and lm-eval's default)."""
    max_new_tokens: int | None = None
    """Generative: tokens generated per answer (null: eval's default, the protocol's
    gold-max, the longest released gold response of the set in the model's tokens)."""
    chat_template: str = "auto"
    """Generative: auto (as `imhi-bench eval` by default: the raw query, chat APIs always
    send messages), true, false."""
    system_prompt: str | None = None
    """Generative: system message before each prompt (ours: none)."""
    base_url: str | None = None
    """Generative, API: an OpenAI-compatible endpoint (default: OpenAI)."""
    api_key_env: str | None = None
    """Generative, API: environment variable holding the key (default OPENAI_API_KEY; the key
    is never written anywhere)."""
    num_concurrent: int = 1
    """Generative, API: requests in flight at once."""
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    """Generative, API: seconds one request waits for its answer before it is retried (as
    eval's --request-timeout)."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """Generative, API: retries of a failed or timed-out request (as eval's --max-retries)."""
    confirm_tokens: int = 200_000
    """Generative, API: above this many estimated prompt tokens, a run needs --yes."""
    dtype: str = "auto"
    """Generative, local: weights dtype (auto, float16, bfloat16, float32)."""
    limit: int | None = None
    """Only the first N samples of each set (for trying a spec; such scores do not compare)."""
    # -- discriminative
    encoder: str = "mental/mental-roberta-base"
    """Discriminative: the encoder fine-tuned per set.  mental/mental-roberta-base is gated on
    the hub (CC-BY-NC-4.0: accept its terms first); any HF encoder can stand in."""
    sets: tuple[str, ...] = ("imhi",)
    """Discriminative: sets to fine-tune and predict (`imhi` = every set with train data or
    a train_file)."""
    epochs: int = 5
    """Discriminative: passes over the train posts; the epoch with the best val weighted F1
    is kept (ours)."""
    learning_rate: float = 5e-5
    """Discriminative: AdamW learning rate (ours; with 5 epochs it beats the majority class
    on every set with train data, README's MentalRoBERTa figures)."""
    max_length: int = 512
    """Discriminative: tokens of the post (+ aspect question) the encoder reads (RoBERTa's 512)."""
    batch_size: int = 16
    """Discriminative: posts per training batch (ours)."""
    max_train: int | None = None
    """Discriminative: at most this many train posts per set (a seeded sample; None: all)."""
    train_file: str | None = None
    """Discriminative: your own CSV with columns post,label (and set, when it holds several
    sets), for sets whose train split IMHI does not release (CAMS, loneliness, T-SID, SWMH,
    CLP: the paper's MentalRoBERTa numbers came from those data sets' own splits)."""
    seed: int = 0
    """Seed of training, sampling and the bootstrap CI."""

    def to_dict(self) -> dict:
        """The spec as a run's provenance records it (a base URL's credentials masked)."""
        from imhi_bench.core.urls import mask_url

        return {**specfile.to_dict(self), "base_url": mask_url(self.base_url)}

    def model_fields(self) -> dict:
        """The model fields a run of the spec is recorded under (`store.record`): the paper's
        row of the same baseline has the same name, type and training data."""
        return {"name": self.name,
                "path": self.encoder if self.runner == "discriminative" else self.model,
                "type": self.type, "training_data": self.training_data}


_CHOICES = {"runner": RUNNERS, "type": TYPES, "setting": SETTINGS, "chat_template": CHAT,
            "training_data": TRAINING_DATA}
_HELP = "see imhi-bench baseline list --keys for the keys"


def field_docs() -> dict[str, str]:
    return specfile.field_docs(BaselineSpec)


def load_spec(path: str | os.PathLike | None, overrides: list[str] | None = None) -> BaselineSpec:
    """The spec at `path` (a shipped spec's name or a YAML file) with `key=value` overrides
    applied, checked."""
    spec = specfile.load(BaselineSpec, path, overrides, what="spec",
                         hint="a spec name (imhi-bench baseline list) or a YAML file",
                         help_hint=_HELP, choices=_CHOICES, shipped=SPEC_DIR)
    _check(spec)
    return spec


def _check(s: BaselineSpec) -> None:
    if not s.name.strip():
        raise ImhiError("the spec has no name: set name=... (the leaderboard shows it)")
    if s.runner == "generative" and not s.model.strip():
        raise ImhiError("a generative spec needs model=PATH_OR_HUB_ID (or the served name)")
    if s.num_fewshot < 0:
        raise ImhiError(f"spec key num_fewshot must be 0 or more, not {s.num_fewshot}")
    if (s.num_fewshot > 0) != (s.setting == "few-shot") and s.runner == "generative":
        raise ImhiError(f"spec setting {s.setting} does not match num_fewshot={s.num_fewshot}: "
                        "few-shot needs num_fewshot > 0, zero-shot 0")
    for name in ("num_concurrent", "epochs", "max_length", "batch_size"):
        if getattr(s, name) < 1:
            raise ImhiError(f"spec key {name} must be at least 1, not {getattr(s, name)}")
    for name in ("limit", "max_train", "max_new_tokens"):
        if getattr(s, name) is not None and getattr(s, name) < 1:
            null = "gold-max, as eval" if name == "max_new_tokens" else "all"
            raise ImhiError(f"spec key {name} must be at least 1 (or null for {null})")
    if s.runner == "generative":
        from imhi_bench.models.options import check_request_limits

        check_request_limits(s.request_timeout, s.max_retries, where="spec key ")
    if s.learning_rate <= 0:
        raise ImhiError(f"spec key learning_rate must be positive, not {s.learning_rate}")
    if s.train_file and not Path(s.train_file).expanduser().is_file():
        raise ImhiError(f"spec train_file {s.train_file} does not exist: pass a CSV with "
                        "columns post,label (and set)")


def list_specs(folder: str | os.PathLike = SPEC_DIR) -> list[tuple[Path, BaselineSpec]]:
    """Every spec in `folder`, by file name."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ImhiError(f"{root} is not a folder of baseline specs: pass --dir with a folder "
                        "of spec YAML files (default: the shipped specs)")
    specs = []
    for p in sorted(root.glob("*.yaml")):
        try:
            specs.append((p, load_spec(p)))
        except ImhiError as e:  # a key's message alone would not say which file has it
            raise ImhiError(str(e) if str(p) in str(e) else f"{p}: {e}") from None
    return specs
