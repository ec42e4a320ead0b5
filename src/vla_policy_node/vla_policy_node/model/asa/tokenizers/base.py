"""Action tokenizers: action chunks [H, D] (normalized units) <-> token id sequences, plus their token filter.

A tokenizer is trained on a dataset (`fit`), used frozen inside an action-space adapter, and saved either on its
own (`storage.save_tokenizer`: the training tool's output) or inside a policy checkpoint (config in
vla_config.json, tensors in model.safetensors, extra files next to them); `registry.py` maps kinds to classes.
Tokens are the tokenizer's own ids 0..vocab_size-1; the adapter maps them onto backbone vocabulary ids.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vla_policy_node.model.asa.grammar import InvalidActionSequence, TokenGrammar


@dataclass(frozen=True)
class TokenDecode:
    """Decoded chunks [N, H, D] and, per chunk, whether its tokens were a valid sequence (invalid ones were
    padded/truncated to shape; only possible when decoding tokens that did not come through the token filter)."""

    actions: np.ndarray
    valid: np.ndarray


class ActionTokenizer(nn.Module, ABC):
    kind: ClassVar[str]

    def __init__(self, horizon: int, action_dim: int) -> None:
        super().__init__()
        if horizon < 1 or action_dim < 1:
            raise ValueError(f"horizon and action_dim must be >= 1, got {horizon}, {action_dim}")
        self.horizon = horizon
        self.action_dim = action_dim

    # --- the tokenizer proper -----------------------------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def fitted(self) -> bool: ...

    @abstractmethod
    def fit(self, chunks: np.ndarray, **train: Any) -> dict[str, Any]:
        """Train on normalized chunks [N, H, D]; returns a report (JSON-able)."""

    @abstractmethod
    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """[N, H, D] -> one token list per chunk."""

    @abstractmethod
    def _decode_valid(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        """Decode sequences already known to be valid -> [N, H, D]."""

    @abstractmethod
    def grammar(self) -> TokenGrammar:
        """The token filter over this tokenizer's sequences (FAST: in the START/END-wrapped id space)."""

    def wrap(self, tokens: Sequence[int]) -> list[int]:
        """Tokenizer ids -> the grammar's id space (identity except for FAST's START/END)."""
        return [int(t) for t in tokens]

    def unwrap(self, tokens: Sequence[int]) -> list[int]:
        return [int(t) for t in tokens]

    def decode(self, tokens: Sequence[Sequence[int]], strict: bool = True) -> TokenDecode:
        """Grammar-space sequences -> chunks. strict: an invalid sequence raises InvalidActionSequence; otherwise it
        is repaired to shape (`_decode_lenient`) and flagged in `valid`."""
        self._require_fitted()
        grammar = self.grammar()
        valid = np.array([grammar.accepts(seq) for seq in tokens], bool)
        if strict and not valid.all():
            grammar.check(tokens[int(np.flatnonzero(~valid)[0])])  # raises, naming the reason
        actions = np.zeros((len(tokens), self.horizon, self.action_dim))
        if valid.any():
            actions[valid] = self._decode_valid([seq for seq, ok in zip(tokens, valid, strict=True) if ok])
        for i in np.flatnonzero(~valid):
            actions[i] = self._decode_lenient(tokens[i])
        return TokenDecode(actions=actions, valid=valid)

    def _decode_lenient(self, tokens: Sequence[int]) -> np.ndarray:
        """[H, D] from an invalid sequence: keep its longest allowed prefix, complete it with the lowest allowed
        tokens. (FAST overrides this with zero-padding / truncation of the coefficients.)"""
        grammar = self.grammar()
        state, out = grammar.start(), []
        for token in map(int, tokens):
            if not 0 <= token < grammar.vocab_size or not grammar.allowed(state)[token]:
                break
            state = grammar.advance(state, token)
            out.append(token)
        while not grammar.is_complete(state):
            token = int(np.flatnonzero(grammar.allowed(state))[0])
            state = grammar.advance(state, token)
            out.append(token)
        return self._decode_valid([out])[0]

    def roundtrip(self, chunks: np.ndarray) -> np.ndarray:
        return self.decode([self.wrap(t) for t in self.encode(chunks)]).actions

    # --- serialization ------------------------------------------------------------------------------------
    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """Everything but tensors and extra files (fitted scalars included), JSON-able."""

    def save_files(self, directory: Path) -> None:
        """Write non-tensor state that does not fit in the config (FAST: the BPE model)."""

    def _check_shape(self, chunks: np.ndarray) -> np.ndarray:
        chunks = np.asarray(chunks, dtype=np.float64)
        if chunks.ndim != 3 or chunks.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(f"{self.kind}: chunks must be [N, {self.horizon}, {self.action_dim}], got {chunks.shape}")
        if not np.all(np.isfinite(chunks)):
            raise ValueError(f"{self.kind}: chunks contain NaN or Inf")
        return chunks

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{self.kind} tokenizer is not fitted: call fit(chunks) or load a trained one")


def reconstruction_report(tokenizer: ActionTokenizer, chunks: np.ndarray,
                          names: Sequence[str] | None = None) -> dict[str, Any]:
    """Round-trip error per action dimension (normalized units) and tokens per chunk."""
    chunks = tokenizer._check_shape(chunks)
    tokens = tokenizer.encode(chunks)
    decoded = tokenizer.decode([tokenizer.wrap(t) for t in tokens]).actions
    err = decoded - chunks
    lengths = np.array([len(t) for t in tokens], float)
    names = list(names) if names is not None else [f"dim{i}" for i in range(tokenizer.action_dim)]
    return {
        "kind": tokenizer.kind,
        "chunks": len(chunks),
        "mse_per_dim": dict(zip(names, np.mean(err**2, axis=(0, 1)).round(8).tolist(), strict=True)),
        "max_abs_per_dim": dict(zip(names, np.abs(err).max(axis=(0, 1)).round(6).tolist(), strict=True)),
        "mse": float(np.mean(err**2)),
        "tokens_per_chunk": {"mean": float(lengths.mean()), "min": int(lengths.min()), "max": int(lengths.max())},
        "vocab_size": tokenizer.vocab_size,
    }


def as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def config_asdict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


__all__ = ["ActionTokenizer", "InvalidActionSequence", "TokenDecode", "reconstruction_report"]
