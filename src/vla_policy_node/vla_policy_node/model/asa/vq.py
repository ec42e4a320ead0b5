"""VQ and RVQ adapters: learned codebook tokens from a (residual) VQ-VAE over actions or chunks.

VQ: one codebook, one token per unit. RVQ: M codebooks, M tokens per unit, coarse to fine; the filter asks for a
code of codebook m at position m, and the head's logits over all M*K codes act as M per-codebook heads.
"""

from __future__ import annotations

from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.tokenized import TokenizedAdapter
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.asa.tokenizers.rvq import RVQTokenizer
from vla_policy_node.model.head_registry import register_head


def _codebook_token_names(tokenizer: ActionTokenizer) -> list[str]:
    assert isinstance(tokenizer, RVQTokenizer)
    k = tokenizer.config.codebook_size
    return [f"<act_c{m}_{i}>" for m in range(tokenizer.config.depth) for i in range(k)]


@register_head("vq", ASAHeadConfig)
class VQAdapter(TokenizedAdapter):
    name = "vq"
    tokenizer_kind = "rvq"

    @classmethod
    def check_tokenizer(cls, tokenizer: ActionTokenizer) -> None:
        if tokenizer.config.depth != 1:
            raise ValueError(f"VQ uses one codebook; this tokenizer has {tokenizer.config.depth} (use 'rvq')")

    @classmethod
    def token_names(cls, tokenizer: ActionTokenizer) -> list[str]:
        return _codebook_token_names(tokenizer)


@register_head("rvq", ASAHeadConfig)
class RVQAdapter(TokenizedAdapter):
    name = "rvq"
    tokenizer_kind = "rvq"

    @classmethod
    def token_names(cls, tokenizer: ActionTokenizer) -> list[str]:
        return _codebook_token_names(tokenizer)
