"""Uniform binning (RT-2 style): K equal bins per action dimension, one token per dimension per step.

Bins span each dimension's fitted [low, high] (normalized units); the bin index is the token (the K tokens are
shared by all dimensions, as RT-2's 256 bins are) and decoding returns the bin centre, so any value inside
[low, high] comes back within half a bin width, (high - low) / (2K). Values outside are clipped to the range.
Token order is time-major: step 0's D tokens, then step 1's, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vla_policy_node.model.asa.grammar import PositionalGrammar
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer, config_asdict

MIN_SPAN = 1e-6  # a constant dimension still gets a (tiny) range, so every bin is well defined


@dataclass(frozen=True)
class UniformConfig:
    horizon: int
    action_dim: int
    bins: int = 256
    low: tuple[float, ...] | None = None  # fitted per dimension
    high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"Uniform tokenizer needs >= 2 bins, got {self.bins}")
        for key in ("low", "high"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, tuple(float(v) for v in value))
                if len(getattr(self, key)) != self.action_dim:
                    raise ValueError(f"Uniform {key} must have {self.action_dim} values")


class UniformTokenizer(ActionTokenizer):
    kind = "uniform"

    def __init__(self, config: UniformConfig) -> None:
        super().__init__(config.horizon, config.action_dim)
        self.config = config

    @classmethod
    def from_config(cls, data: dict[str, Any], directory: Path | None = None) -> UniformTokenizer:
        return cls(UniformConfig(**data))

    def config_dict(self) -> dict[str, Any]:
        return config_asdict(self.config)

    @property
    def vocab_size(self) -> int:
        return self.config.bins

    @property
    def fitted(self) -> bool:
        return self.config.low is not None and self.config.high is not None

    @property
    def bin_width(self) -> np.ndarray:
        self._require_fitted()
        return (np.array(self.config.high) - np.array(self.config.low)) / self.config.bins

    def fit(self, chunks: np.ndarray, **train: Any) -> dict[str, Any]:
        chunks = self._check_shape(chunks)
        low = chunks.min(axis=(0, 1))
        high = np.maximum(chunks.max(axis=(0, 1)), low + MIN_SPAN)
        self.config = replace(self.config, low=tuple(low.tolist()), high=tuple(high.tolist()))
        return {"low": list(self.config.low), "high": list(self.config.high),
                "half_bin_width": (self.bin_width / 2).tolist()}

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        self._require_fitted()
        chunks = self._check_shape(chunks)
        low, width = np.array(self.config.low), self.bin_width
        index = np.clip(np.floor((chunks - low) / width), 0, self.config.bins - 1).astype(np.int64)
        return index.reshape(len(chunks), -1).tolist()

    def _decode_valid(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        index = np.asarray(tokens, np.int64).reshape(len(tokens), self.horizon, self.action_dim)
        return np.array(self.config.low) + (index + 0.5) * self.bin_width

    def grammar(self) -> PositionalGrammar:
        every = np.ones(self.config.bins, bool)
        return PositionalGrammar([every] * (self.horizon * self.action_dim))
