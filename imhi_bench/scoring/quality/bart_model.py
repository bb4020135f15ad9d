"""The BART model of BART-score: a check that costs nothing (before any generation), and
loading, cached so that scoring many sets loads the model once.

Importing this module does not import torch; `load_bart` does.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from imhi_bench.core.errors import ImhiError
from imhi_bench.models.loading import HUB_ID, check_hub_model, explain_load_failure
from imhi_bench.scoring.quality.table import DEFAULT_BART_MODEL


def check_bart_model(model: str, checkpoint: str | None = None, *,
                     given_by: str = "--bart-model") -> None:
    """Fail now, with one line, if `model` cannot load: a folder that does not exist or is
    not a model folder, or a hub id that is not cached while the hub is offline; and a
    `checkpoint` file that does not exist.  `given_by` names where the value came from
    (an option, a variable), so the message names what to change."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ImhiError(f"{given_by} {model} is not a model folder (no config.json): pass "
                            "the folder save_pretrained wrote, or a hub id such as "
                            f"{DEFAULT_BART_MODEL}")
    elif not HUB_ID.match(model):
        raise ImhiError(f"{given_by} {model}: no such folder; pass a local BART folder or a "
                        f"hub id such as {DEFAULT_BART_MODEL}")
    else:  # a hub id: cached when offline, else the hub answering, or one line now
        check_hub_model(model, given_by, what="BART")
    if checkpoint and not Path(checkpoint).expanduser().is_file():
        raise ImhiError(f"BART checkpoint {checkpoint} does not exist (expected e.g. "
                        "bart_score.pth)")


def model_key(model: str) -> str:
    """One name per model: a local folder by its resolved path, a hub id as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def load_bart(
    model: str = DEFAULT_BART_MODEL, checkpoint: str | None = None, device: str | None = None
):
    """(model, tokenizer) for BART-score, cached so that scoring many sets loads it once.

    `checkpoint` is a state dict such as BARTScore's ParaBank `bart_score.pth`, read with
    `torch.load(..., weights_only=True)` (no pickled code runs).
    """
    from imhi_bench.models.device import default_device

    return _load_bart(str(model), str(checkpoint) if checkpoint else None,
                      device or default_device())


@functools.lru_cache(maxsize=2)
def _load_bart(model: str, checkpoint: str | None, device: str):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    with explain_load_failure("BART model", model, "--bart-model"):
        tokenizer = AutoTokenizer.from_pretrained(model)
        net = AutoModelForSeq2SeqLM.from_pretrained(model)
    if checkpoint:
        _load_checkpoint(net, checkpoint)
    return net.to(device).eval(), tokenizer


def _load_checkpoint(net, checkpoint: str | os.PathLike) -> None:
    import torch

    path = Path(checkpoint)
    if not path.is_file():
        raise ImhiError(f"BART checkpoint {path} does not exist (expected e.g. bart_score.pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise ImhiError(
            f"{path} is not a loadable state dict ({type(e).__name__}): expected a file saved "
            "with torch.save(model.state_dict())"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ImhiError(f"{path} does not hold a state dict of tensors")
    missing, unexpected = net.load_state_dict(state, strict=False)
    # Checkpoints saved by older transformers may omit weights tied to the shared embedding.
    tied = {"lm_head.weight", "model.encoder.embed_tokens.weight",
            "model.decoder.embed_tokens.weight"}
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        detail = ", ".join((missing + unexpected)[:3])
        raise ImhiError(
            f"{path} does not match the BART model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected key(s), e.g. {detail}): use the checkpoint made "
            "for this --bart-model"
        )
    if hasattr(net, "tie_weights"):
        net.tie_weights()


def check_bart_net(net) -> None:
    """BART-score reads BART's encoder, decoder and LM-head bias directly."""
    if not all(hasattr(net, a) for a in ("model", "final_logits_bias", "get_encoder")):
        raise ImhiError(
            f"BART-score needs a BART-style model, got {type(net).__name__}: pass --bart-model "
            "with a BART checkpoint such as facebook/bart-large-cnn"
        )
