"""The Qwen shortcuts give the processor's and the Conv3d's numbers: batched pixel values bit for bit, the linear
patch embedding to float precision; other image sizes fall back to the processor's own path."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.qwen_fast import batch_pixel_values, linear_patch_embeds
from vla_policy_node.model.tiny import build_tiny_processor, build_tiny_vla


@pytest.mark.parametrize(("family", "size"), [("qwen3_vl", 128), ("qwen3_vl", 64), ("qwen2_5_vl", 56)])
def test_batched_pixel_values_are_the_image_processors(family: str, size: int) -> None:
    processor = build_tiny_processor(family, size)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(5)]
    slow = processor.image_processor(images, return_tensors="np")
    fast = batch_pixel_values(processor.image_processor, images, {"return_tensors": "np"})
    assert fast is not None
    assert fast["pixel_values"].dtype == slow["pixel_values"].dtype
    np.testing.assert_array_equal(fast["pixel_values"], slow["pixel_values"])
    np.testing.assert_array_equal(fast["image_grid_thw"], slow["image_grid_thw"])
    # the whole processor call (text with image tokens) is the stock one's
    prompt = "<|vision_start|><|image_pad|><|vision_end|>put the red block on the white pad"
    ours = processor(images=[[im] for im in images], text=[prompt] * 5, return_tensors="pt")
    stock = types.MethodType(ProcessorMixin._process_images, processor)
    processor._process_images = stock
    theirs = processor(images=[[im] for im in images], text=[prompt] * 5, return_tensors="pt")
    assert set(ours) == set(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_other_sizes_and_options_take_the_processors_path() -> None:
    processor = build_tiny_processor("qwen3_vl", 64)
    rng = np.random.default_rng(1)
    assert batch_pixel_values(processor.image_processor, [rng.integers(0, 256, (100, 90, 3), np.uint8)], {}) is None
    same = [rng.integers(0, 256, (64, 64, 3), np.uint8)] * 2
    assert batch_pixel_values(processor.image_processor, same, {"do_normalize": False}) is None
    mixed = [same[0], rng.integers(0, 256, (96, 96, 3), np.uint8)]
    assert batch_pixel_values(processor.image_processor, mixed, {}) is None
    out = processor(images=[[im] for im in mixed], text=["<|vision_start|><|image_pad|><|vision_end|>"] * 2)
    assert len(out["image_grid_thw"]) == 2  # the stock path handled them


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_linear_patch_embedding_matches_the_convolution(family: str, sim_arm) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm], family)
    embeds = [m for name, m in model.named_modules() if name.endswith("patch_embed")]
    assert len(embeds) == 1 and linear_patch_embeds(model) == 1  # built with it; applying again is harmless
    embed = embeds[0]
    embed.proj.weight.requires_grad_(True)  # the backbone is built frozen
    x = torch.randn(40, embed.proj.weight[0].numel())
    fast = embed(x)
    conv = type(embed).forward(embed, x)
    torch.testing.assert_close(fast, conv, rtol=1e-5, atol=1e-5)
    fast.sum().backward()
    grad_fast = embed.proj.weight.grad.clone()
    embed.proj.weight.grad = None
    type(embed).forward(embed, x).sum().backward()
    torch.testing.assert_close(grad_fast, embed.proj.weight.grad, rtol=1e-4, atol=1e-4)
