"""Shared machinery of the continuous token adapters (Uniform, VQ, RVQ, FAST): a frozen, fitted action tokenizer
supplies targets (encode), the decoder (decode) and the token filter (grammar); the adapter adds the head and the
embedding over the backbone ids the tokens were given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from vla_policy_node.model.asa.adapter import TokenAdapter, normalized_chunks
from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.grammar import TokenGrammar
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.asa.tokenizers.registry import tokenizer_from_dict


class TokenizedAdapter(TokenAdapter):
    tokenizer_kind: ClassVar[str]

    def __init__(self, config: ASAHeadConfig, tokenizer: ActionTokenizer | None = None,
                 directory: Path | None = None) -> None:
        tokenizer = tokenizer if tokenizer is not None else tokenizer_from_dict(config.tokenizer or {}, directory)
        if tokenizer.kind != self.tokenizer_kind or not tokenizer.fitted:
            raise ValueError(f"{self.name} needs a fitted {self.tokenizer_kind!r} tokenizer, got "
                             f"{'a fitted' if tokenizer.fitted else 'an unfitted'} {tokenizer.kind!r} one")
        if (tokenizer.horizon, tokenizer.action_dim) != (config.horizon, config.action_dim):
            raise ValueError(f"tokenizer chunks are [{tokenizer.horizon}, {tokenizer.action_dim}], the head predicts "
                             f"[{config.horizon}, {config.action_dim}]")
        self.check_tokenizer(tokenizer)
        grammar = tokenizer.grammar()
        super().__init__(config, grammar.vocab_size)
        self.tokenizer = tokenizer
        self.tokenizer.requires_grad_(False)
        self._grammar = grammar

    @classmethod
    def from_config(cls, config: ASAHeadConfig, directory: Path | None = None) -> TokenizedAdapter:
        return cls(config, None, directory)

    @classmethod
    def check_tokenizer(cls, tokenizer: ActionTokenizer) -> None:
        """Adapter-specific requirements on the tokenizer (VQ: a single codebook)."""

    @classmethod
    def token_names(cls, tokenizer: ActionTokenizer) -> list[str]:
        """Strings of the tokens added to the vocabulary under the 'new' strategy, one per local id."""
        raise NotImplementedError

    def grammar(self) -> TokenGrammar:
        return self._grammar

    def train(self, mode: bool = True) -> TokenizedAdapter:
        super().train(mode)
        self.tokenizer.eval()  # frozen: never in training mode
        return self

    def targets(self, batch: Mapping[str, Any]) -> list[list[int]]:
        chunks = normalized_chunks(batch, self.config.horizon, self.config.action_dim)
        return [self.tokenizer.wrap(seq) for seq in self.tokenizer.encode(chunks)]

    def decode(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        actions = self.tokenizer.decode(sequences, strict=True).actions
        return torch.from_numpy(actions).to(self._dtype())

    def save_files(self, directory: Path) -> None:
        self.tokenizer.save_files(directory)
