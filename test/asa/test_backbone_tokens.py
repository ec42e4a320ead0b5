"""Backbone support for token action heads: KV-cache decoding equals a full forward pass (every family, batched
and left-padded), vocabulary growth, rarely used ids."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vla_policy_node.model.backbone import Backbone, BackboneConfig
from vla_policy_node.model.tiny import build_tiny_backbone, tiny_backbone_config
from vla_policy_node.model.token_decoder import decode_step, embed_tokens, prefill
from vla_policy_node.model.vocabulary import add_backbone_tokens, rare_token_ids

VARIANTS = ["qwen2_5_vl", "qwen3_vl", "paligemma", "paligemma2", "idefics3", "smolvlm"]
INSTRUCTIONS = ["pick up the red block and put it in the blue bowl", "open"]  # different lengths: padding


def left_padded(variant: str) -> Backbone:
    torch.manual_seed(0)
    return build_tiny_backbone(replace(tiny_backbone_config(variant), padding_side="left"))


def images(seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)] for _ in INSTRUCTIONS]


def full_forward_with_appended(backbone: Backbone, frames, instruction: str, extra: torch.Tensor) -> torch.Tensor:
    """Reference: one unpadded sample, the extra token ids appended to the prompt, no cache."""
    single = backbone.prepare([frames], [instruction])
    inputs = dict(single)
    inputs["input_ids"] = torch.cat([single["input_ids"], extra[None]], 1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    zeros, ones = torch.zeros_like(extra[None]), torch.ones_like(extra[None])
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat([single["mm_token_type_ids"], zeros], 1)
    if "token_type_ids" in inputs:  # PaliGemma: the appended tokens are the (causal) suffix
        inputs["token_type_ids"] = torch.cat([single["token_type_ids"], ones], 1)
    features, _ = backbone(inputs)
    return features[0, -(len(extra) + 1):]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_decoding_equals_full_forward(variant: str) -> None:
    backbone = left_padded(variant)
    frames = images()
    inputs = backbone.prepare(frames, INSTRUCTIONS)
    assert not inputs["attention_mask"][:, 0].all()  # the shorter prompt really is left-padded
    extra = torch.tensor([[55, 90, 111], [70, 300, 120]])  # ordinary text token ids
    with torch.no_grad():
        last, state = prefill(backbone, inputs)
        first = decode_step(backbone, state, embed_tokens(backbone, extra[:, :1]))  # one step...
        rest = decode_step(backbone, state, embed_tokens(backbone, extra[:, 1:]))  # ...then two at once
        for b, instruction in enumerate(INSTRUCTIONS):
            reference = full_forward_with_appended(backbone, frames[b], instruction, extra[b])
            cached = torch.cat([last[b:b + 1], first[b], rest[b]])
            torch.testing.assert_close(cached, reference, atol=2e-5, rtol=1e-4)


def test_prefill_refuses_right_padded_batches() -> None:
    backbone = build_tiny_backbone(tiny_backbone_config("qwen2_5_vl"))
    with pytest.raises(ValueError, match="left-padded"):
        prefill(backbone, backbone.prepare(images(), INSTRUCTIONS))


def test_decode_step_carries_gradients_into_fed_embeddings_of_a_frozen_backbone() -> None:
    backbone = left_padded("qwen2_5_vl")
    assert not any(p.requires_grad for p in backbone.parameters())
    _, state = prefill(backbone, backbone.prepare(images(), INSTRUCTIONS))
    fed = torch.randn(2, 1, backbone.hidden_size, requires_grad=True)
    decode_step(backbone, state, fed).sum().backward()
    assert fed.grad is not None and fed.grad.abs().sum() > 0


def test_add_tokens_grows_vocabulary_and_embeddings() -> None:
    backbone = left_padded("smolvlm")
    before = backbone.vocab_size
    ids = add_backbone_tokens(backbone, ["<act_0>", "<act_1>"])
    assert ids == [before, before + 1] and backbone.vocab_size == before + 2
    assert backbone.model.config.get_text_config().vocab_size == before + 2  # saved with the checkpoint config
    weight = backbone.input_embeddings.weight
    torch.testing.assert_close(weight[ids[0]], weight[:before].mean(0))  # new rows start at the mean
    assert not weight.requires_grad  # a frozen backbone stays frozen
    assert backbone.processor.tokenizer.convert_tokens_to_ids("<act_1>") == ids[1]
    assert add_backbone_tokens(backbone, ["<act_1>"]) == [ids[1]] and backbone.vocab_size == before + 2  # idempotent


def test_rare_token_ids_are_the_last_ordinary_ids() -> None:
    backbone = left_padded("qwen2_5_vl")
    tokenizer = backbone.processor.tokenizer
    rare = rare_token_ids(backbone, 20)
    assert rare == sorted(rare) and len(set(rare)) == 20
    assert not set(rare) & set(tokenizer.all_special_ids)
    assert max(rare) < tokenizer.vocab_size
    with pytest.raises(ValueError, match="non-special"):
        rare_token_ids(backbone, 10**6)


def test_padding_side_is_validated_and_defaults_to_right() -> None:
    assert tiny_backbone_config("qwen2_5_vl").padding_side == "right"
    with pytest.raises(ValueError, match="padding_side"):
        replace(tiny_backbone_config("qwen2_5_vl"), padding_side="middle")
    data = replace(tiny_backbone_config("qwen2_5_vl"), padding_side="left").to_dict()
    assert BackboneConfig.from_dict(data).padding_side == "left"
