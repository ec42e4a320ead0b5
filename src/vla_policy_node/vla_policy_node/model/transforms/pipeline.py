"""The transform pipeline: built once from a checkpoint's config (+ the robot's embodiment when serving), used by
training (`train/data.py` collation, the Trainer) and serving (`VLAPolicy`: the policy node, replay, the sim and
Meta-World evaluations) alike, so the model sees identical inputs in both.

    sample/observation -> Frame -> input steps (per sample, numpy)        ResolveEmbodiment, SelectCameras,
                                                                          ResizeImages, NormalizeState,
                                                                          NormalizeActions, PadToHead,
                                                                          [NormalizeEnvState]
                       -> collate (batch): BackboneInputs (processor, chat template) + stacked tensors
                       -> device stage: ToDevice, then `device_steps` (tensors on the model's device; issue 16)
                       -> model
    prediction         -> output steps: the inverses of the input steps, in reverse order (unpad, unnormalize)

Build it with `TransformPipeline.from_model(model, normalization, embodiment)` when the model is loaded, or
`TransformPipeline.from_checkpoint(directory, embodiment)` without loading any weights (data loaders).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.backbone_inputs import BackboneInputs
from vla_policy_node.model.transforms.device import Batch, BatchTransform, ToDevice
from vla_policy_node.model.transforms.frame import Frame
from vla_policy_node.model.transforms.steps import (
    FrameTransform,
    InvertibleTransform,
    NormalizeActions,
    NormalizeEnvState,
    NormalizeState,
    PadToHead,
    ResizeImages,
    ResolveEmbodiment,
    SelectCameras,
)
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.normalization import NormalizationSet

if TYPE_CHECKING:
    from vla_policy_node.model.vla_model import VLAConfig, VLAModel

# A batch step that fits frames as received to (height, width) per camera itself, then makes the model inputs:
# the fast path's `FastPath.prepare` (resize, rescale, normalize and patchify as tensors on the device).
ImageInputs = Callable[[Sequence[Sequence[np.ndarray]], Sequence[str], Sequence[tuple[int, int]] | None],
                       dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TransformPipeline:
    """steps: per-sample input steps, in order; backbone_inputs: the batch step (the backbone's processor);
    aux: the auxiliary probe's config when the checkpoint has one (training batches then carry env_state);
    device_steps: batch steps run on the model's device after `ToDevice`; camera_sizes: tag -> camera ->
    (height, width) frames are fitted to; image_inputs: set by `with_image_inputs`."""

    steps: tuple[FrameTransform, ...]
    backbone_inputs: BackboneInputs
    aux: AuxProbeConfig | None = None
    device_steps: tuple[BatchTransform, ...] = ()
    camera_sizes: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=dict)
    image_inputs: ImageInputs | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, config: VLAConfig, normalization: NormalizationSet, backbone_inputs: BackboneInputs, *,
              embodiment: Embodiment | None = None, device_steps: Sequence[BatchTransform] = ()) -> TransformPipeline:
        """From a checkpoint's config and normalization. Frames are resized to the camera sizes the checkpoint
        recorded; a checkpoint that recorded none is fed at the sizes of `embodiment`'s cameras (if given)."""
        slots = {slot.tag: slot for slot in config.embodiments}
        sizes: dict[str, dict[str, tuple[int, int]]] = {}
        for slot in slots.values():
            if slot.camera_sizes is not None:
                sizes[slot.tag] = dict(zip(slot.camera_names, slot.camera_sizes, strict=True))
            elif embodiment is not None and embodiment.tag == slot.tag:
                sizes[slot.tag] = {c.name: (c.height, c.width) for c in embodiment.cameras
                                   if c.name in slot.camera_names}
        head = config.head
        action_dims = {tag: slot.action_dim for tag, slot in slots.items()}
        steps: list[FrameTransform] = [
            ResolveEmbodiment(slots),
            SelectCameras({tag: slot.camera_names for tag, slot in slots.items()}),
            ResizeImages(sizes),
            NormalizeState(normalization, {tag: slot.state_dim for tag, slot in slots.items()}),
            NormalizeActions(normalization, action_dims, head.horizon),
            PadToHead(head.max_state_dim, head.horizon, head.max_action_dim, action_dims),
        ]
        if config.aux is not None:
            steps.append(NormalizeEnvState(config.aux))
        return cls(tuple(steps), backbone_inputs, config.aux, tuple(device_steps), sizes)

    @classmethod
    def from_model(cls, model: VLAModel, normalization: NormalizationSet, embodiment: Embodiment | None = None,
                   ) -> TransformPipeline:
        return cls.build(model.config, normalization, model.backbone.inputs, embodiment=embodiment)

    @classmethod
    def from_checkpoint(cls, source: str | Path, embodiment: Embodiment | None = None) -> TransformPipeline:
        """Config, normalization and processor files of a checkpoint; no weights are read."""
        from vla_policy_node.model.checkpoint import read_pipeline_parts

        config, normalization, backbone_inputs = read_pipeline_parts(source)
        return cls.build(config, normalization, backbone_inputs, embodiment=embodiment)

    def with_image_inputs(self, image_inputs: ImageInputs) -> TransformPipeline:
        """This pipeline with the image work moved into the batch step (the fast path, issue 16): `ResizeImages` is
        left out and `image_inputs(images, instructions, sizes)` fits the frames (given as received) to the same
        camera sizes and makes the model inputs in place of `backbone_inputs`. Every other step is unchanged."""
        steps = tuple(step for step in self.steps if not isinstance(step, ResizeImages))
        return dataclasses.replace(self, steps=steps, image_inputs=image_inputs)

    # ------------------------------------------------------------------ inputs
    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        """The per-sample steps; an error names the sample it comes from."""
        out = []
        for i, frame in enumerate(frames):
            try:
                for step in self.steps:
                    frame = step(frame)
            except ValueError as exc:
                raise type(exc)(f"sample {i}: {exc}") from exc
            out.append(frame)
        return out

    def inputs(self, frames: Sequence[Frame]) -> Batch:
        """Serving: model inputs for observations (inputs, state [B, S], category [B]); actions are not needed."""
        return self._collate(self.process(frames), training=False)

    def collate(self, frames: Sequence[Frame]) -> Batch:
        """Training: model inputs plus targets (actions [B, H, A], action_mask [B, H, A], env_state [B, E] when
        the checkpoint has an auxiliary probe)."""
        return self._collate(self.process(frames), training=True)

    def _collate(self, frames: list[Frame], *, training: bool) -> Batch:
        images = [list(f.images.values()) for f in frames]
        instructions = [f.instruction for f in frames]
        if self.image_inputs is None:
            inputs = self.backbone_inputs(images, instructions)
        else:
            tags = {f.tag for f in frames}
            if len(tags) != 1:
                raise ValueError(f"a batch step that fits frames itself needs one embodiment per batch, got {tags}")
            sizes = self.camera_sizes.get(tags.pop())
            inputs = self.image_inputs(images, instructions,
                                       None if sizes is None else [sizes[name] for name in frames[0].images])
        batch: Batch = {"inputs": inputs, "state": torch.from_numpy(np.stack([f.state for f in frames]))}
        if training:
            missing = [i for i, f in enumerate(frames) if f.actions is None]
            if missing:
                raise ValueError(f"sample {missing[0]}: a training sample needs its action chunk")
            batch["actions"] = torch.from_numpy(np.stack([f.actions for f in frames]))
            batch["action_mask"] = torch.from_numpy(np.stack([f.action_mask for f in frames]))
        batch["category"] = torch.from_numpy(np.array([f.category for f in frames], np.int64))
        if training and self.aux is not None:
            lacking = [i for i, f in enumerate(frames) if f.env_state is None]
            if lacking:
                raise ValueError(f"sample {lacking[0]}: the model's aux probe needs env_state "
                                 "(observation.environment_state), and this sample has none")
            batch["env_state"] = torch.from_numpy(np.stack([f.env_state for f in frames]))
        return batch

    def to_device(self, batch: Batch, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        """The device stage: `ToDevice`, then the device steps."""
        batch = ToDevice(torch.device(device), dtype)(batch)
        for step in self.device_steps:
            batch = step(batch)
        return batch

    # ------------------------------------------------------------------ actions both ways
    @property
    def action_steps(self) -> tuple[InvertibleTransform, ...]:
        return tuple(step for step in self.steps if isinstance(step, InvertibleTransform))

    def encode_actions(self, actions: np.ndarray, tag: str) -> np.ndarray:
        """Physical actions [H, D] -> what the model predicts ([H, max_action_dim], normalized; RTC prefixes)."""
        frame = Frame(tag=tag, actions=np.asarray(actions))
        for step in self.action_steps:
            frame = step(frame)
        assert frame.actions is not None
        return frame.actions

    def outputs(self, actions: torch.Tensor, tags: Sequence[str]) -> list[np.ndarray]:
        """The output steps: predicted actions [B, H, max_action_dim] (normalized) -> per sample [H, D] in
        physical units; the inverses of the input steps, applied in reverse order."""
        values = actions.float().cpu().numpy()
        if len(values) != len(tags):
            raise ValueError(f"{len(values)} predictions for {len(tags)} samples")
        out = []
        for row, tag in zip(values, tags, strict=True):
            frame = Frame(tag=tag, actions=row)
            for step in reversed(self.action_steps):
                frame = step.inverse(frame)
            assert frame.actions is not None
            out.append(frame.actions)
        return out
