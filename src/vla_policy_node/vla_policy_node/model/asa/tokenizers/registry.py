"""Action tokenizer kinds -> classes, and tokenizers to / from their config dicts (as stored in a checkpoint's head
config or a standalone tokenizer directory). The registry imports the tokenizers; `base.py` knows none of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.asa.tokenizers.fast import FastTokenizer
from vla_policy_node.model.asa.tokenizers.rvq import RVQTokenizer
from vla_policy_node.model.asa.tokenizers.uniform import UniformTokenizer

TOKENIZER_CLASSES: dict[str, type[ActionTokenizer]] = {
    cls.kind: cls for cls in (UniformTokenizer, RVQTokenizer, FastTokenizer)
}


def tokenizer_classes() -> dict[str, type[ActionTokenizer]]:
    return dict(TOKENIZER_CLASSES)


def tokenizer_to_dict(tokenizer: ActionTokenizer) -> dict[str, Any]:
    return {"kind": tokenizer.kind, **tokenizer.config_dict()}


def tokenizer_from_dict(data: dict[str, Any], directory: str | Path | None = None) -> ActionTokenizer:
    """Structure + fitted scalars from a config dict (+ extra files from `directory`); tensors are loaded later."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in TOKENIZER_CLASSES:
        raise ValueError(f"unknown action tokenizer kind {kind!r}; known: {sorted(TOKENIZER_CLASSES)}")
    return TOKENIZER_CLASSES[kind].from_config(data, None if directory is None else Path(directory))
