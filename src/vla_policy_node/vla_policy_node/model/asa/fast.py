"""FAST adapter (RoboAlign): a chunk as <ACTION_START> FAST tokens <ACTION_END>, vocabulary ~2K BPE tokens."""

from __future__ import annotations

from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.tokenized import TokenizedAdapter
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.head_registry import register_head

ACTION_START = "<ACTION_START>"
ACTION_END = "<ACTION_END>"


def fast_token_names(vocab_size: int) -> list[str]:
    """The token string of each FAST BPE id; shared with RoboAlign's MLLM stages so both name them alike."""
    return [f"<fast_{k}>" for k in range(vocab_size)]


@register_head("fast", ASAHeadConfig)
class FastAdapter(TokenizedAdapter):
    name = "fast"
    tokenizer_kind = "fast"

    @classmethod
    def token_names(cls, tokenizer: ActionTokenizer) -> list[str]:
        """Local ids 0/1 are START/END (the grammar's layout), then one token per BPE id."""
        return [ACTION_START, ACTION_END, *fast_token_names(tokenizer.vocab_size)]
