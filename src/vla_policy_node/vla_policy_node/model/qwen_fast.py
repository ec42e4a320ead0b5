"""Two exact shortcuts for Qwen2.5-VL / Qwen3-VL on small images, where they were most of a CPU training step.

- Pixels: the PIL image processor handles images one by one in Python (resize, rescale, normalize, patchify).
  Camera frames that already have the processor's size need no resize, and the rest is the same arithmetic on
  the whole batch at once in numpy: `batch_pixel_values` (None when the shortcut does not apply, e.g. another
  size or per-call options, and the processor's own path runs).
- Patch embedding: the vision tower's Conv3d has kernel == stride (one patch in, one vector out), i.e. a
  matrix product; torch's CPU convolution is several times slower than `F.linear` on the same weights.
  `linear_patch_embeds` swaps the forward, not the parameters, so checkpoints are unchanged.

Both give the same numbers as the original path (tests compare them); only the time differs.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers.feature_extraction_utils import BatchFeature

# per-call options that change what the processor does; with any of them the processor's own path runs
_ALLOWED_KWARGS = frozenset({"return_tensors"})


def batch_pixel_values(image_processor: Any, images: Sequence[np.ndarray],
                       kwargs: dict[str, Any]) -> BatchFeature | None:
    """pixel_values [N * patches, C*T*P*P] and image_grid_thw [N, 3] for same-size HxWx3 uint8 images that the
    processor would not resize, computed for the whole batch; None when that is not the case."""
    if not images or any(v is not None for k, v in kwargs.items() if k not in _ALLOWED_KWARGS):
        return None
    first = images[0]
    if not all(isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.shape == first.shape and im.ndim == 3
               and im.shape[2] == 3 for im in images):
        return None
    p = image_processor
    patch, merge, temporal = int(p.patch_size), int(p.merge_size), int(p.temporal_patch_size)
    h, w = first.shape[:2]
    size = p.size
    edge_min, edge_max = size.get("shortest_edge"), size.get("longest_edge")
    factor = patch * merge
    if (h % factor or w % factor or edge_min is None or edge_max is None
            or not edge_min <= h * w <= edge_max):  # smart_resize would change the size
        return None
    x = _normalized(np.stack(images), _value_table(p))  # [N, H, W, C] float32
    n, c = len(images), 3
    gh, gw = h // patch, w // patch
    x = x.transpose(0, 3, 1, 2).reshape(n, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(0, 2, 5, 3, 6, 1, 4, 7)  # [N, gh/m, gw/m, m, m, C, P, P]: the processor's patch order
    x = np.broadcast_to(x[:, :, :, :, :, :, None], (*x.shape[:6], temporal, patch, patch))
    pixel_values = np.ascontiguousarray(x.reshape(n * gh * gw, c * temporal * patch * patch))
    grid = np.tile(np.array([[1, gh, gw]], np.int64), (n, 1))
    return BatchFeature(data={"pixel_values": pixel_values, "image_grid_thw": grid},
                        tensor_type=kwargs.get("return_tensors"))


def _value_table(p: Any) -> np.ndarray:
    """[256, 3] float32: what the processor's rescale and normalize make of each 8-bit value in each channel, with
    transformers' dtype steps (rescale in float64, then float32; normalize in float32), so a lookup gives the
    same bits as computing every pixel (and ~4x faster: one pass instead of five over a batch)."""
    values = np.arange(256, dtype=np.float64)
    x = (values * p.rescale_factor).astype(np.float32) if p.do_rescale else values.astype(np.float32)
    table = np.repeat(x[:, None], 3, axis=1)
    if p.do_normalize:
        table = (table - np.asarray(p.image_mean, np.float32)) / np.asarray(p.image_std, np.float32)
    return np.ascontiguousarray(table, dtype=np.float32)


def _normalized(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, np.float32)
    for channel in range(x.shape[-1]):
        np.take(table[:, channel], x[..., channel], out=out[..., channel])
    return out


def _linear_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.proj.weight
    x = hidden_states.to(weight.dtype).reshape(-1, weight[0].numel())
    return F.linear(x, weight.reshape(weight.shape[0], -1), self.proj.bias).view(-1, weight.shape[0])


def linear_patch_embeds(model: nn.Module) -> int:
    """Make every Qwen vision patch embedding (a Conv3d with kernel == stride over a flattened patch) run as a
    linear layer on the same weights; returns how many were changed."""
    changed = 0
    for module in model.modules():
        proj = getattr(module, "proj", None)
        if (type(module).__name__.endswith("VisionPatchEmbed") and isinstance(proj, nn.Conv3d)
                and proj.kernel_size == proj.stride and proj.padding == (0, 0, 0) and proj.groups == 1):
            module.forward = types.MethodType(_linear_forward, module)
            changed += 1
    return changed
