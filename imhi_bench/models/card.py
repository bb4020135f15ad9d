"""The training card: what `imhi-bench train` writes into the folder it produces (the recipe,
the data files with their sha256, row counts, the code's commit, final metrics), read back
when that folder is evaluated or submitted, so the results store knows what the model was
trained on."""

from __future__ import annotations

import json
import os
from pathlib import Path

CARD_FILE = "imhi_training_card.json"


def read_card(folder: str | os.PathLike | None) -> dict | None:
    """The card of a model or adapter folder, or None (a hub id, no card, an unreadable one:
    a card is information, never a reason to fail)."""
    if not folder:
        return None
    path = Path(folder).expanduser() / CARD_FILE
    try:
        card = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def card_summary(card: dict | None) -> dict | None:
    """The part of a card a run's provenance keeps: what data, from which recipe."""
    if card is None:
        return None
    recipe = card.get("recipe") or {}
    return {
        "training_data": card.get("training_data"),
        "sets": recipe.get("sets"),
        "format": recipe.get("format"),
        "finetuning": recipe.get("finetuning"),
        # trained with the chat template: eval then uses it too (the protocol says so)
        "chat_template": card.get("chat_template"),
        "base_model": recipe.get("model"),
        "git_commit": card.get("git_commit"),
        "data_files": card.get("data_files"),
    }
