"""Vocabulary ids for action tokens: new tokens (tokenizer + grown embedding matrix and LM head) or the base
vocabulary's rarest ids (OpenVLA's convention). Used by the token action heads' builder (model/asa/build.py) and
RoboAlign's MLLM stages, which name the same FAST tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedModel

if TYPE_CHECKING:
    from vla_policy_node.model.backbone import Backbone


def add_tokens(model: PreTrainedModel, tokenizer: Any, tokens: Sequence[str]) -> list[int]:
    """Add `tokens` to the tokenizer (as special tokens: never split, never merged) and grow the input embeddings
    (and the LM head, if the model has one) to cover them. New rows start at the mean of the existing ones (a
    neutral, in-distribution input). Returns their ids. Tokens already present keep their ids and rows."""
    before = model.get_input_embeddings().num_embeddings
    fresh = [t for t in tokens if t not in tokenizer.get_vocab()]
    if fresh:
        tokenizer.add_tokens(list(fresh), special_tokens=True)
    size = max(before, len(tokenizer))
    if size > before:
        model.resize_token_embeddings(size, mean_resizing=False)
        for config in (model.config, model.config.get_text_config()):
            if hasattr(config, "vocab_size"):
                config.vocab_size = size
    fresh_ids = sorted(set(tokenizer.convert_tokens_to_ids(fresh)))
    if fresh_ids:
        with torch.no_grad():
            for weight in {id(w): w for w in token_matrices(model)}.values():
                keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
                keep[fresh_ids] = False
                weight[fresh_ids] = weight[keep].mean(0, keepdim=True)
    return [int(i) for i in tokenizer.convert_tokens_to_ids(list(tokens))]


def token_matrices(model: PreTrainedModel) -> list[torch.Tensor]:
    out = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not out[0]:
        out.append(head.weight)
    return out


def add_backbone_tokens(backbone: Backbone, tokens: Sequence[str]) -> list[int]:
    """`add_tokens` on the cut backbone; the grown matrix trains exactly when the backbone is fully trained (LoRA
    leaves the embeddings alone)."""
    ids = add_tokens(backbone.model, backbone.processor.tokenizer, tokens)
    backbone.input_embeddings.weight.requires_grad_(not backbone.config.freeze)
    return ids


def rare_token_ids(backbone: Backbone, count: int) -> list[int]:
    """`count` ids of the base vocabulary that the text uses least: the last ids of the byte-pair vocabulary
    (merges are learned most-frequent first, so the last ones are the rarest; OpenVLA's convention), skipping
    special and added tokens. Ascending order."""
    tokenizer = backbone.processor.tokenizer
    reserved = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    base = [i for i in range(min(tokenizer.vocab_size, backbone.vocab_size)) if i not in reserved]
    if count > len(base):
        raise ValueError(f"asked for {count} rarely used token ids, the vocabulary has only {len(base)} "
                         "non-special ones; add new tokens instead (token strategy 'new')")
    return base[len(base) - count:]
