"""A trained action tokenizer on its own directory (the tokenizer-training tool's output): config JSON, tensors
(safetensors), extra files, and the normalization its chunks were normalized with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.asa.tokenizers.registry import tokenizer_from_dict, tokenizer_to_dict
from vla_policy_node.spec.normalization import NormalizationSet

CONFIG_FILE = "action_tokenizer.json"
TENSORS_FILE = "action_tokenizer.safetensors"
NORMALIZATION_FILE = "normalization.json"


def save_tokenizer(tokenizer: ActionTokenizer, directory: str | Path, *, normalization: Any = None,
                   report: dict[str, Any] | None = None) -> Path:
    """A standalone tokenizer directory: config JSON, tensors (safetensors), extra files, and the normalization
    its chunks were normalized with (the policy must use the same, or token boundaries mean other actions)."""
    tokenizer._require_fitted()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"tokenizer": tokenizer_to_dict(tokenizer), "report": report or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in tokenizer.state_dict().items()}
    if state:
        save_file(state, str(directory / TENSORS_FILE))
    tokenizer.save_files(directory)
    if normalization is not None:
        (directory / NORMALIZATION_FILE).write_text(json.dumps(normalization.to_dict(), indent=2))
    return directory


def load_tokenizer(directory: str | Path) -> tuple[ActionTokenizer, NormalizationSet | None]:
    """-> (tokenizer, NormalizationSet or None) from `save_tokenizer`'s directory."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {directory}")
    tokenizer = tokenizer_from_dict(json.loads(path.read_text())["tokenizer"], directory)
    if (directory / TENSORS_FILE).is_file():
        tokenizer.load_state_dict(load_file(str(directory / TENSORS_FILE)), strict=True)
    norm_path = directory / NORMALIZATION_FILE
    normalization = NormalizationSet.from_dict(json.loads(norm_path.read_text())) if norm_path.is_file() else None
    return tokenizer, normalization
