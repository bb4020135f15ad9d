"""BERTScore F1 through `bert-score`: the generation is the candidate, the gold response the
reference (F1 is symmetric anyway); no idf weighting, no baseline rescaling."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from imhi_bench.core.errors import ImhiError, first_line
from imhi_bench.scoring.quality.table import DEFAULT_BERTSCORE_MODEL, QualityOptions


def check_bertscore_model(model: str | None) -> None:
    """A hub id (the default included) must be downloadable, or cached when the hub is
    offline: one line in seconds rather than a minute of retries.  Folders are left to the
    loader, which names what is wrong with them."""
    from imhi_bench.models.loading import check_hub_model, is_hub_id

    model = model or DEFAULT_BERTSCORE_MODEL
    if is_hub_id(model):
        check_hub_model(model, "--bertscore-model", what="BERTScore model")


@functools.lru_cache(maxsize=2)
def _bertscorer(model: str, layers: int | None, device: str | None, batch_size: int):
    import bert_score
    from bert_score.utils import model2layers

    check_bertscore_model(model)
    if layers is None and model not in model2layers:
        # bert-score only knows layer choices for models it has tuned; else use the last.
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(model)
        except (OSError, ValueError):
            raise ImhiError(
                f"cannot load BERTScore model {model!r}: pass --bertscore-model with a local "
                "folder or a Hugging Face id you can download"
            ) from None
        layers = getattr(config, "num_hidden_layers", None)
        if layers is None:
            raise ImhiError(f"cannot tell how many layers {model!r} has: pass --bertscore-layers")
    try:
        return bert_score.BERTScorer(model_type=model, num_layers=layers, device=device,
                                     batch_size=batch_size)
    except (OSError, ValueError) as e:
        first = first_line(e)
        raise ImhiError(f"cannot load BERTScore model {model!r} ({first})") from None
    except AssertionError as e:  # bert-score asserts a valid layer count
        raise ImhiError(f"--bertscore-layers {layers} is invalid for {model!r} ({e})") from None


def bertscore_f1(
    candidates: Sequence[str],
    references: Sequence[str],
    *,
    model: str | None = None,
    layers: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
) -> list[float]:
    """BERTScore F1 of each candidate against its reference (no idf, no baseline rescale)."""
    if len(candidates) != len(references):
        raise ImhiError(
            f"BERTScore needs as many candidates as references "
            f"({len(candidates)} vs {len(references)})"
        )
    if not candidates:
        return []
    scorer = _bertscorer(model or DEFAULT_BERTSCORE_MODEL, layers, device, batch_size)
    # An empty text scores 0, as bert-score itself defines it; it is kept out of the call
    # because bert-score's empty-text path uses a tokenizer method transformers 5 dropped.
    keep = [i for i, (c, r) in enumerate(zip(candidates, references))
            if (c or "").strip() and (r or "").strip()]
    out = [0.0] * len(candidates)
    if keep:
        # bert-score sorts by length and deduplicates internally; verbose = its tqdm bar.
        _, _, f1 = scorer.score([candidates[i] for i in keep], [references[i] for i in keep],
                                verbose=progress, batch_size=batch_size)
        for i, value in zip(keep, f1.tolist(), strict=True):
            out[i] = float(value)
    return out


def per_sample(generations: Sequence[str], golds: Sequence[str],
               options: QualityOptions) -> list[float]:
    """The table's function: BERTScore F1 of each generation against its gold."""
    return bertscore_f1(generations, golds, model=options.bertscore_model,
                        layers=options.bertscore_layers, device=options.device,
                        progress=options.progress)
