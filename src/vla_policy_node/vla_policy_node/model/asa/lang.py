"""Lang and SemLang adapters: discrete actions written in the model's own text tokens.

SemLang spells each action as a meaningful phrase ("turn left", "pick up the key"); Lang as an arbitrary number
string. Each action's tokens are followed by the tokenizer's EOS, which makes the set prefix-free, and the token
filter is the trie of these sequences, so decoding can only produce one of the actions.

The head is the LM's output projection restricted to the tokens the phrases use. The cut backbone has no LM head,
so the projection is tied to the input embedding rows of those tokens (as in tied-embedding LMs such as
Qwen2.5-VL-3B and PaliGemma), after a trainable LayerNorm + linear map that stands in for the removed upper layers
and final norm. The map starts at zero (uniform over the allowed tokens: identity would make a cut model predict
its input token again) and logits are divided by sqrt(H) * RMS of the rows' entries, with a learned gain, so
their scale does not depend on the model's embedding scale. The embedding fed back is the plain text embedding:
nothing new is learned per token, which is the point of SemLang (the phrase means something to the LM already).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vla_policy_node.model.asa.adapter import TokenAdapter, action_indices
from vla_policy_node.model.asa.config import ASAHeadConfig, TokenIds
from vla_policy_node.model.asa.grammar import TrieGrammar
from vla_policy_node.model.backbone import Backbone
from vla_policy_node.model.head_registry import register_head


def number_phrases(count: int, seed: int = 0) -> list[str]:
    """Lang's arbitrary number strings: distinct random integers below 1000, fixed by `seed`."""
    rng = np.random.default_rng(seed)
    return [str(int(v)) for v in rng.choice(1000, size=count, replace=False)]


def text_token_ids(backbone: Backbone, phrases: Sequence[str]) -> TokenIds:
    """The text tokens spelling each phrase, then EOS; local ids index the sorted set of ids used."""
    tokenizer = backbone.processor.tokenizer
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token to end an action phrase with")
    spelled = [list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in phrases]
    for phrase, ids in zip(phrases, spelled, strict=True):
        if not ids or eos in ids:
            raise ValueError(f"phrase {phrase!r} tokenizes to {ids}: need >= 1 token and no EOS inside")
    vocab = sorted({t for ids in spelled for t in ids} | {eos})
    local = {t: i for i, t in enumerate(vocab)}
    return TokenIds(strategy="text", ids=tuple(vocab),
                    sequences=tuple(tuple(local[t] for t in [*ids, eos]) for ids in spelled))


class TextActionAdapter(TokenAdapter):
    learned_embedding = False
    tied_logits = True

    def __init__(self, config: ASAHeadConfig) -> None:
        record = config.token_ids
        if record is None or record.strategy != "text" or len(record.sequences) != len(config.actions):
            raise ValueError(f"{self.name}: token_ids must be the 'text' spelling of each of the "
                             f"{len(config.actions)} actions (text_token_ids)")
        super().__init__(config, len(record.ids))
        h = config.backbone_dim
        self.proj = nn.Linear(h, h)
        self.log_gain = nn.Parameter(torch.zeros(()))
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self._grammar = TrieGrammar(record.sequences, len(record.ids))

    def grammar(self) -> TrieGrammar:
        return self._grammar

    def head(self, hidden: torch.Tensor, backbone: Backbone) -> torch.Tensor:
        weight = backbone.input_embeddings.weight
        rows = weight[self.backbone_ids(weight.device)]  # tied to the input embedding (raw rows, as LM heads are)
        x = self.proj(self.norm(hidden.to(self._dtype())))
        rows = rows.to(x.dtype)
        rms = rows.detach().pow(2).mean().sqrt().clamp_min(1e-8)
        return (x @ rows.T) * (self.log_gain.exp() / (rms * x.shape[-1] ** 0.5))

    def targets(self, batch: Mapping[str, Any]) -> list[list[int]]:
        index = action_indices(batch, len(self.config.actions))
        return [list(self._grammar.sequences[i]) for i in index.tolist()]

    def decode(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        index = [self._grammar.index_of(seq) for seq in sequences]
        return torch.tensor(index, dtype=self._dtype()).reshape(-1, 1, 1)

    def phrase(self, index: int) -> str:
        return self.config.phrases[index]

    @classmethod
    def phrases_for(cls, actions: Sequence[str], phrases: Sequence[str] | None, seed: int = 0) -> tuple[str, ...]:
        """The text each action is written as."""
        raise NotImplementedError


@register_head("lang", ASAHeadConfig)
class LangAdapter(TextActionAdapter):
    name = "lang"

    @classmethod
    def phrases_for(cls, actions: Sequence[str], phrases: Sequence[str] | None, seed: int = 0) -> tuple[str, ...]:
        """Given phrases, or arbitrary number strings fixed by `seed`."""
        return tuple(phrases or number_phrases(len(actions), seed))


@register_head("semlang", ASAHeadConfig)
class SemLangAdapter(TextActionAdapter):
    name = "semlang"

    @classmethod
    def phrases_for(cls, actions: Sequence[str], phrases: Sequence[str] | None, seed: int = 0) -> tuple[str, ...]:
        """Given phrases, or the action names themselves."""
        return tuple(phrases or actions)
