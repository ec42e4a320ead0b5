"""Uniform adapter (RT-2 style): K bins per action dimension, one token per dimension and step."""

from __future__ import annotations

from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.tokenized import TokenizedAdapter
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.head_registry import register_head


@register_head("uniform", ASAHeadConfig)
class UniformAdapter(TokenizedAdapter):
    name = "uniform"
    tokenizer_kind = "uniform"

    @classmethod
    def token_names(cls, tokenizer: ActionTokenizer) -> list[str]:
        return [f"<act_bin_{k}>" for k in range(tokenizer.vocab_size)]
