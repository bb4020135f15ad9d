"""A run's protocol: every choice that moves a number, as one frozen object.

Two numbers compare only when they were made under the same protocol: the same prompt (format,
chat template, system prompt, demonstrations), the same decoding, the same label reader, the
same metric variants, the same task version and unmodified released data.  Every run records
its protocol (`provenance["protocol"]` of `imhi_results.json`, and the store's
`runs.protocol_id`/`runs.protocol`); the leaderboard ranks the runs of one protocol at a time.

The model is HELM's frozen `RunSpec`/`AdapterSpec`: one field per choice, a docstring per
field, an id that is a hash of the fields, and a human name.  Building one from a run's
provenance, the default (the paper's) protocol and the names are
`imhi_bench.scoring.protocol`; this module knows no layer above `core`, so every layer can
read a recorded protocol.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

UNKNOWN = "unknown"
# lm-eval's default `--fewshot_random_seed`: `imhi-bench eval` uses it too, so the same K gives
# the same demonstrations through `imhi-bench eval` and plain `lm_eval` (issue 20).
DEFAULT_FEWSHOT_SEED = 1234
# Decoding: the longest released gold response of the set, counted in the model's own tokens
# (`imhi_bench.runs.lengths`), so no answer of the paper's length is cut.
GOLD_MAX = "gold-max"
# The metric definitions of `imhi_bench.scoring.metrics`, named so a change to them is a new
# protocol (the authors' `score.py` averages macro F1 over every class seen, gold or
# predicted, and never meets an unreadable answer: IMHI.py's rules default to a class).
METRICS_VERSION = ("weighted F1 and macro F1 over the gold classes (scikit-learn); "
                   "an unreadable answer counts as wrong")
RELEASE = "release"
# Version of the IMHI task definitions (the YAMLs of `tasks_yaml/`); 2.0: accuracy in
# percent, bart_score in every task.
TASK_VERSION = 2.0
# lm-eval's default stop string is "\n\n", which would cut an explanation after its first
# paragraph (340 released gold responses have more than one).  None of these occurs in any
# released gold response; they catch a base model that goes on to write the next prompt.
# Four at most: the OpenAI API accepts no more.
STOP_STRINGS: tuple[str, ...] = ("\n\n\n", "\nConsider this post:", "\nPost:", "\nQuestion:")


@dataclass(frozen=True)
class Protocol:
    """How a run's numbers were made: one field per choice that changes a number."""

    prompt_format: str
    """The released prompt files used: instruction (`test_instruction`), completion
    (`test_complete`) or expert (`test_instruction_expert`); "mixed" when a run mixes them."""
    chat_template: bool | None
    """Whether the query was wrapped in the tokenizer's chat template (IMHI.py never does:
    False is the paper's).  None: not known (generations scored from elsewhere)."""
    system_prompt: str | None
    """A system message before each prompt (None: none, as the paper)."""
    num_fewshot: int
    """Demonstrations before each prompt (0: the paper's zero-shot)."""
    fewshot_seed: int | None
    """Seed of the demonstrations' draw (None when num_fewshot is 0)."""
    fewshot_sampler: str | None
    """How demonstrations are drawn and from which pool (None when num_fewshot is 0)."""
    decoding: str
    """greedy (the paper's: IMHI.py decodes with the checkpoint's generation config, which for
    the released models is greedy), or the sampling settings."""
    max_new_tokens: int | str
    """The generation length limit: "gold-max" (the longest released gold response of the
    set in the model's own tokens, so no answer of the paper's length is cut) or a number
    of tokens (`--max-new-tokens`)."""
    stop: tuple[str, ...]
    """Strings that end a generation (IMHI.py: end of sequence only)."""
    label_reader: str
    """How a label is read from the generated text: "rules/<version>"
    (`imhi_bench.scoring.labels`) or "classifier/<content sha256>" (a `--labeler` folder,
    explicit answers still read by the rules).  The paper: per-set MentalBERT classifiers."""
    bart_score: str
    """The BART-score variant: the BART model, "+ checkpoint <sha256>" when a fine-tuned
    checkpoint (the paper's ParaBank `bart_score.pth`) is loaded on it."""
    bertscore: str
    """The BERTScore model and layer ("roberta-large@default": bert-score's own default)."""
    metrics: str
    """The definitions of weighted F1, macro F1 and how unreadable answers count."""
    task_version: str
    """Version of the IMHI task definitions (`imhi_bench.tasks.names.TASK_VERSION`)."""
    data: str
    """"release": every scored file is the released one (sha256 or git blob id of the
    pinned MentaLLaMA release); "modified: <sets>" otherwise; "unknown" when not recorded."""

    @property
    def id(self) -> str:
        """A short hash of every field: equal ids, equal protocols."""
        canonical = json.dumps(self.to_fields(), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def to_fields(self) -> dict:
        out = asdict(self)
        out["stop"] = list(self.stop)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Protocol:
        """The protocol a run recorded (extra keys such as id and name are ignored; a key
        that is missing reads as unknown)."""
        values = {}
        for f in fields(cls):
            v = data.get(f.name, UNKNOWN)
            values[f.name] = tuple(v) if f.name == "stop" and isinstance(v, list) else v
        return cls(**values)


def differences(a: Protocol, b: Protocol) -> list[tuple[str, object, object]]:
    """(field, value in a, value in b) for every field where they differ, in field order."""
    fa, fb = a.to_fields(), b.to_fields()
    return [(k, fa[k], fb[k]) for k in fa if fa[k] != fb[k]]


def short_change(key: str, value) -> str:
    """A few words for one field's value in a protocol's name."""
    if key == "chat_template":
        return {True: "chat template", False: "no chat template"}.get(value, "chat template ?")
    if key == "num_fewshot":
        return f"{value}-shot"
    if key == "fewshot_seed":
        return f"few-shot seed {value}"
    if key == "max_new_tokens":
        return f"max {value} new tokens"
    if key == "label_reader":
        return f"labels by {value}"
    if key == "data":
        return f"data {value}"
    if key == "system_prompt":
        return "system prompt" if value else "no system prompt"
    if value == UNKNOWN:
        return f"{key.replace('_', ' ')} unknown"
    return f"{key.replace('_', ' ')}: {value}"


