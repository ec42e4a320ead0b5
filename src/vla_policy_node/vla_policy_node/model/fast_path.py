"""The inference fast path: every step switchable, so each one is measured (benchmarks/bench_policy_latency.py).

    fast = FastPath(model, FastPathConfig(device_preprocess=True, compile_backbone=True, capture_head="auto"))
    inputs = fast.prepare(images, instructions)          # instead of model.backbone.prepare
    actions = fast.sample(ctx, horizon=..., num_steps=..., generator=..., prefix=..., prefix_weights=...)

Steps (FastPathConfig):
- device_preprocess: camera frames go to the device as uint8 and are resized (antialiased bicubic, what PIL's
  BICUBIC does), rescaled, normalized and patchified there as tensors: no PIL and no float image on the host
  per frame. The text side (prompt tokens, image grid) depends only on the instruction and the frame sizes, so it
  comes from the model's own processor once per (instruction, sizes) and is reused: static shapes from frame to
  frame. Families whose image processor we reproduce: Qwen2.5-VL, Qwen3-VL, PaliGemma; Idefics3/SmolVLM (tiling,
  Lanczos) keep the processor (`device_preprocess_active` says which).
- attention: the backbone's attention kernel ("sdpa": PyTorch's fused scaled-dot-product attention, which
  dispatches to flash / memory-efficient kernels on GPU; every supported family has it).
- dtype: "auto" = bfloat16 on CUDA (backbone and head), float32 on CPU.
- compile_backbone: torch.compile of the backbone (inductor; graph breaks where transformers computes positions in
  Python are allowed).
- capture_head: the whole denoising loop (all Euler steps, RTC guidance included) as one compiled graph, run
  once per chunk: "reduce-overhead" (CUDA graphs: one launch replays every step's kernels), "compile" (inductor,
  no graphs: the CPU choice), "auto" (reduce-overhead on CUDA, compile elsewhere), "none" (eager loop).
- warm-up happens where the model is served (the inference process / node start-up), so the compilation and
  graph capture are paid before the first command.

Equivalence with the eager path is tested on CPU for every family (test/model/test_fast_path.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vla_policy_node.model.flow_head import FlowMatchingHead, HeadContext

log = logging.getLogger(__name__)

CAPTURE_MODES = ("none", "compile", "reduce-overhead", "auto")
DEVICE_FAMILIES = ("qwen2_5_vl", "qwen3_vl", "paligemma")


@dataclass(frozen=True)
class FastPathConfig:
    device_preprocess: bool = True
    attention: str | None = "sdpa"  # None: keep the model's
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    compile_backbone: bool = False
    capture_head: str = "none"  # none | compile | reduce-overhead | auto
    compile_backend: str = "inductor"  # torch.compile backend; "aot_eager" traces without generating code (tests)

    def __post_init__(self) -> None:
        if self.capture_head not in CAPTURE_MODES:
            raise ValueError(f"capture_head must be one of {CAPTURE_MODES}, got {self.capture_head!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")

    @classmethod
    def eager(cls) -> FastPathConfig:
        """Every step off: what VLAPolicy does without a fast path (the baseline of the benchmark)."""
        return cls(device_preprocess=False, attention=None, dtype="auto", compile_backbone=False, capture_head="none")

    @classmethod
    def full(cls) -> FastPathConfig:
        return cls(device_preprocess=True, attention="sdpa", dtype="auto", compile_backbone=True, capture_head="auto")


FAST_PATH_PRESETS = ("auto", "off", "full")


def fast_path_preset(name: str, device: str | torch.device) -> FastPathConfig | None:
    """The node's `fast_path` setting: "off" = the eager path; "full" = every step; "auto" (default) = every step
    on CUDA, on the CPU only SDPA (compiling a backbone on a CPU costs minutes at start-up and gains little there;
    bench_policy_latency.py prints both)."""
    if name not in FAST_PATH_PRESETS:
        raise ValueError(f"fast_path must be one of {FAST_PATH_PRESETS}, got {name!r}")
    if name == "off":
        return None
    if name == "full" or torch.device(device).type == "cuda":
        return FastPathConfig.full()
    return FastPathConfig(device_preprocess=False, attention="sdpa", dtype="auto", compile_backbone=False,
                          capture_head="none")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class FastPath:
    """The fast-path pieces for one VLAModel (flow head). Apply once, after the model is on its device."""

    def __init__(self, model: Any, config: FastPathConfig | None = None) -> None:
        self.model = model
        self.config = config = config or FastPathConfig()
        backbone = model.backbone
        param = next(model.parameters())
        self.device = param.device
        self.dtype = resolve_dtype(config.dtype, self.device)
        if config.attention is not None:
            set_attention(backbone.model, config.attention)
        if param.dtype != self.dtype:
            model.to(self.dtype)
        family = backbone.family.name
        self.preprocessor = (DevicePreprocessor(backbone, self.device, self.dtype)
                             if config.device_preprocess and family in DEVICE_FAMILIES else None)
        if config.device_preprocess and self.preprocessor is None:
            log.info("device preprocessing is not implemented for %s: its processor prepares the images", family)
        if config.compile_backbone:
            backbone.model.forward = torch.compile(backbone.model.forward, dynamic=False,
                                                   backend=config.compile_backend)
        mode = config.capture_head
        if mode == "auto":
            mode = "reduce-overhead" if self.device.type == "cuda" else "compile"
        self.capture_mode = mode
        head = model.head
        self.sampler = (CapturedSampler(head, mode, config.compile_backend)
                        if mode != "none" and isinstance(head, FlowMatchingHead) else None)
        if self.sampler is not None:
            head.sample = self.sample  # the head's own callers (VLAPolicy, predict) get the captured loop

    @property
    def device_preprocess_active(self) -> bool:
        return self.preprocessor is not None

    def prepare(self, images: Sequence[Sequence[np.ndarray]], instructions: Sequence[str],
                fit_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, torch.Tensor]:
        """Model inputs. images[b][c]: a camera frame; with `fit_sizes[c]` = (height, width) it may come as
        received (`FittedImages.native`) and is fitted to that size here, as `spec.images.fit_image` would
        (on the device when device preprocessing is on)."""
        if self.preprocessor is None:
            if fit_sizes is not None:
                images = [[_fit_on_host(frame, size) for frame, size in zip(sample, fit_sizes, strict=True)]
                          for sample in images]
            return self.model.backbone.prepare(images, instructions)
        return self.preprocessor(images, instructions, fit_sizes)

    def sample(self, ctx: HeadContext, horizon: int | None = None, num_steps: int | None = None,
               generator: torch.Generator | None = None, prefix: torch.Tensor | None = None,
               prefix_weights: torch.Tensor | None = None, step_callback=None) -> torch.Tensor:
        """The head's `sample`, captured when configured (then `step_callback` runs once, after all steps). With
        a capture mode, FastPath installs this as the head's `sample`."""
        if self.sampler is None:
            return FlowMatchingHead.sample(self.model.head, ctx, horizon=horizon, num_steps=num_steps,
                                           generator=generator, prefix=prefix, prefix_weights=prefix_weights,
                                           step_callback=step_callback)
        x = self.sampler(ctx, horizon, num_steps, generator, prefix, prefix_weights)
        if step_callback is not None:
            step_callback((num_steps or self.model.head.config.num_steps) - 1)
        return x


def set_attention(model: Any, implementation: str) -> None:
    """Switch a loaded transformers model (and its sub-models) to `implementation` ("sdpa", "eager", ...)."""
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        setter(implementation)
        return
    for module in model.modules():  # older transformers: the configs carry the choice
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = implementation


# --------------------------------------------------------------------------------------------------- head
class CapturedSampler:
    """FlowMatchingHead.sample's Euler loop compiled as one graph. Same noise draw as the eager loop (from the
    caller's generator, before the loop), so both give the same chunk up to kernel rounding."""

    def __init__(self, head: FlowMatchingHead, mode: str, backend: str = "inductor") -> None:
        self.head = head
        self.mode = mode
        options: dict[str, Any] = {"dynamic": False, "backend": backend}
        if mode == "reduce-overhead" and backend == "inductor":
            options["mode"] = "reduce-overhead"
        self._loop = torch.compile(self._denoise, **options)

    def __call__(self, ctx: HeadContext, horizon: int | None, num_steps: int | None, generator: torch.Generator | None,
                 prefix: torch.Tensor | None, prefix_weights: torch.Tensor | None) -> torch.Tensor:
        c = self.head.config
        horizon = horizon or c.horizon
        num_steps = num_steps or c.num_steps
        b = ctx.features.shape[0]
        dtype = ctx.features.dtype
        x = torch.randn((b, horizon, c.max_action_dim), generator=generator, device=ctx.features.device).to(dtype)
        if prefix is not None:
            if prefix_weights is None or prefix.shape != x.shape or prefix_weights.shape != x.shape[:2]:
                raise ValueError(f"RTC prefix must be {tuple(x.shape)} with weights {tuple(x.shape[:2])}")
            prefix, prefix_weights = prefix.to(dtype), prefix_weights.to(dtype)[:, :, None]
        with torch.no_grad():
            out = self._loop(ctx.features, ctx.mask, ctx.state_token, ctx.category, x, prefix, prefix_weights,
                             num_steps)
        return out.clone() if self.mode == "reduce-overhead" else out  # graph outputs are reused by the next replay

    def _denoise(self, features: torch.Tensor, mask: torch.Tensor, state_token: torch.Tensor, category: torch.Tensor,
                 x: torch.Tensor, prefix: torch.Tensor | None, w: torch.Tensor | None, num_steps: int) -> torch.Tensor:
        head = self.head
        ctx = HeadContext(features=features, mask=mask, state_token=state_token, category=category)
        buckets = head.config.timestep_buckets
        dtype = x.dtype
        b = x.shape[0]
        for i in range(num_steps):
            t = i / num_steps
            timestep = torch.full((b,), int(t * buckets), device=x.device, dtype=torch.long)
            v = head.velocity(ctx, x, timestep).to(dtype)
            if prefix is not None:
                clean = x + (1 - t) * v
                clean = (1 - w) * clean + w * prefix
                v = (clean - x) / (1 - t)
            x = x + v / num_steps
        return x


# -------------------------------------------------------------------------------------------- images
def _fit_on_host(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from vla_policy_node.spec.embodiment import CameraSpec
    from vla_policy_node.spec.images import fit_image

    return fit_image(frame, CameraSpec(name="fit", topic="/fit", height=size[0], width=size[1]))


class DevicePreprocessor:
    """The backbone's processor, with the per-frame pixel work done as tensors on the model's device.

    Tokens, masks and image grids come from the processor itself, once per (instructions, frame sizes) (they do
    not depend on the pixels); `pixel_values` is computed here from the uint8 frames and replaces the processor's.
    """

    def __init__(self, backbone: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.backbone = backbone
        self.device = device
        self.dtype = dtype
        processor = backbone.processor.image_processor
        self.family = backbone.family.name
        self.mean = torch.tensor(processor.image_mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(processor.image_std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.rescale = float(getattr(processor, "rescale_factor", 1 / 255))
        self.image_processor = processor
        self._text_cache: dict[tuple, dict[str, torch.Tensor]] = {}

    def __call__(self, images: Sequence[Sequence[np.ndarray]], instructions: Sequence[str],
                 fit_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, torch.Tensor]:
        if fit_sizes is None:
            fit_sizes = [tuple(frame.shape[:2]) for frame in images[0]] if images else []
        shapes = tuple(tuple((*size, 3) for size, _ in zip(fit_sizes, sample, strict=True)) for sample in images)
        key = (tuple(instructions), shapes)
        template = self._text_cache.get(key)
        if template is None:
            blanks = [[np.zeros(shape, np.uint8) for shape in sample] for sample in shapes]
            prepared = self.backbone.prepare(blanks, list(instructions))  # validates, tokenizes, sizes the grid
            template = {k: v.to(self.device) for k, v in prepared.items() if k != "pixel_values"}
            self._text_cache[key] = template
            if len(self._text_cache) > 64:  # instructions change rarely; bound it anyway
                self._text_cache.pop(next(iter(self._text_cache)))
        else:
            self.backbone.inputs.validate(images, instructions)
        frames = [(frame, tuple(size)) for sample in images for frame, size in zip(sample, fit_sizes, strict=True)]
        pixel_values = self._pixels(frames)
        return {**template, "pixel_values": pixel_values}

    def _pixels(self, frames: list[tuple[np.ndarray, tuple[int, int]]]) -> torch.Tensor:
        groups: dict[tuple, list[int]] = {}
        for i, (frame, size) in enumerate(frames):
            groups.setdefault((frame.shape[:2], size), []).append(i)
        outputs: list[torch.Tensor | None] = [None] * len(frames)
        for ((fh, fw), (h, w)), indices in groups.items():
            batch = torch.from_numpy(np.stack([frames[i][0] for i in indices]))  # host uint8, one copy
            batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            if (fh, fw) != (h, w):  # the camera's model size, as fit_image makes it (PIL bilinear, uint8)
                batch = F.interpolate(batch, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
                batch = batch.round_().clamp_(0, 255)
            th, tw = self._target_size(h, w)
            if (th, tw) != (h, w):
                # PIL resizes uint8 -> uint8 (antialiased bicubic): round and clamp as it does
                batch = F.interpolate(batch, size=(th, tw), mode="bicubic", antialias=True, align_corners=False)
                batch = batch.round_().clamp_(0, 255)
            batch = (batch * self.rescale - self.mean) / self.std
            for j, i in enumerate(indices):
                outputs[i] = batch[j]
        if self.family == "paligemma":
            return torch.stack(outputs).to(self.dtype)  # [N, 3, H, W]
        return torch.cat([self._patchify(image) for image in outputs]).to(self.dtype)

    def _target_size(self, h: int, w: int) -> tuple[int, int]:
        p = self.image_processor
        if self.family == "paligemma":
            return int(p.size.height), int(p.size.width)
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize  # no torchvision

        return smart_resize(h, w, factor=p.patch_size * p.merge_size, min_pixels=p.size.shortest_edge,
                            max_pixels=p.size.longest_edge)

    def _patchify(self, image: torch.Tensor) -> torch.Tensor:
        """[3, H, W] -> Qwen2-VL's flattened patches [grid_h * grid_w, 3 * T * P * P] (its processor's layout)."""
        p = self.image_processor
        patch, merge, temporal = p.patch_size, p.merge_size, p.temporal_patch_size
        c, h, w = image.shape
        gh, gw = h // patch, w // patch
        frames = image[None].expand(temporal, c, h, w)  # a still image is repeated over the temporal patch
        x = frames.reshape(1, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gh * gw, c * temporal * patch * patch)
