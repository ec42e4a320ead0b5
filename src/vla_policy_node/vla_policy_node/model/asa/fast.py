"""FAST adapter (RoboAlign): a chunk as <ACTION_START> FAST tokens <ACTION_END>, vocabulary ~2K BPE tokens."""

from __future__ import annotations

from vla_policy_node.model.asa.tokenized import TokenizedAdapter
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer

ACTION_START = "<ACTION_START>"
ACTION_END = "<ACTION_END>"


class FastAdapter(TokenizedAdapter):
    name = "fast"
    tokenizer_kind = "fast"

    @classmethod
    def token_names(cls, tokenizer: ActionTokenizer) -> list[str]:
        """Local ids 0/1 are START/END (the grammar's layout), then one token per BPE id."""
        return [ACTION_START, ACTION_END, *(f"<fast_{k}>" for k in range(tokenizer.vocab_size))]
