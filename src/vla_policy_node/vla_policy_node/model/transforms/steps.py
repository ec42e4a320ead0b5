"""The per-sample steps of the input pipeline, each a small callable `Frame -> Frame` (openpi's
`DataTransformFn`). Steps that change what the model predicts also have an `inverse`, which the pipeline applies,
in reverse order, to the model's output (normalize -> unnormalize, pad -> unpad).

Every step looks up what it needs by the frame's embodiment tag, so one pipeline serves a multi-embodiment
training batch as well as a policy bound to one robot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.embodiment_slot import EmbodimentSlot, UnknownEmbodimentError
from vla_policy_node.model.transforms.frame import Frame
from vla_policy_node.spec.images import resize_image
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.spec.types import ObservationError


class FrameTransform(Protocol):
    def __call__(self, frame: Frame) -> Frame: ...


@runtime_checkable
class InvertibleTransform(Protocol):
    """A step whose effect on actions the output side undoes."""

    def __call__(self, frame: Frame) -> Frame: ...

    def inverse(self, frame: Frame) -> Frame: ...


@dataclass(frozen=True)
class ResolveEmbodiment:
    """The frame's tag must be one of the checkpoint's embodiments; sets the slot index (`category`)."""

    slots: Mapping[str, EmbodimentSlot]

    def __call__(self, frame: Frame) -> Frame:
        slot = self.slots.get(frame.tag)
        if slot is None:
            raise UnknownEmbodimentError(f"unknown embodiment {frame.tag!r}; this model knows {sorted(self.slots)}")
        return dataclasses.replace(frame, category=slot.index)


@dataclass(frozen=True)
class SelectCameras:
    """Keep the checkpoint's cameras, in its order: a robot may have more (those are not fed); a camera the
    checkpoint needs and the frame lacks is an error naming it."""

    cameras: Mapping[str, tuple[str, ...]]

    def __call__(self, frame: Frame) -> Frame:
        names = self.cameras[frame.tag]
        missing = [name for name in names if name not in frame.images]
        if missing:
            raise ObservationError(f"missing camera {missing[0]!r}: the checkpoint reads cameras {list(names)} for "
                                   f"{frame.tag!r}, the sample has {sorted(frame.images)}")
        return dataclasses.replace(frame, images={name: frame.images[name] for name in names})


@dataclass(frozen=True)
class ResizeImages:
    """Each camera's frame to the resolution the model is fed (bilinear, aspect not kept; a no-op at that size):
    the same function the bag-to-dataset converter and the policy node use (`spec.images`)."""

    sizes: Mapping[str, Mapping[str, tuple[int, int]]]  # tag -> camera -> (height, width)

    def __call__(self, frame: Frame) -> Frame:
        sizes = self.sizes.get(frame.tag)
        if not sizes:
            return frame
        return dataclasses.replace(frame, images={
            name: resize_image(image, *sizes[name]) if name in sizes else image
            for name, image in frame.images.items()
        })


@dataclass(frozen=True)
class NormalizeState:
    """Physical state -> normalized (the checkpoint's stats for the frame's embodiment)."""

    normalization: NormalizationSet
    state_dims: Mapping[str, int]

    def __call__(self, frame: Frame) -> Frame:
        dim = self.state_dims[frame.tag]
        state = np.asarray(frame.state)
        if state.shape != (dim,):
            raise ValueError(f"state must have {dim} values, got {state.shape}")
        return dataclasses.replace(frame, state=self.normalization[frame.tag].state.normalize(state))


@dataclass(frozen=True)
class NormalizeActions:
    """Physical actions [H, D] -> normalized; the inverse takes predicted actions back to physical units."""

    normalization: NormalizationSet
    action_dims: Mapping[str, int]
    horizon: int

    def __call__(self, frame: Frame) -> Frame:
        if frame.actions is None:
            return frame
        shape = (self.horizon, self.action_dims[frame.tag])
        actions = np.asarray(frame.actions)
        if actions.shape != shape:
            raise ValueError(f"actions must be [{shape[0]}, {shape[1]}], got {actions.shape}")
        return dataclasses.replace(frame, actions=self.normalization[frame.tag].action.normalize(actions))

    def inverse(self, frame: Frame) -> Frame:
        if frame.actions is None:
            return frame
        return dataclasses.replace(frame, actions=self.normalization[frame.tag].action.unnormalize(frame.actions))


@dataclass(frozen=True)
class PadToHead:
    """State to [max_state_dim] and actions to [horizon, max_action_dim] (float32, zero-padded), with an action
    mask that is True on the embodiment's own dims of the valid steps; the inverse keeps the embodiment's dims."""

    max_state_dim: int
    horizon: int
    max_action_dim: int
    action_dims: Mapping[str, int]

    def __call__(self, frame: Frame) -> Frame:
        state = np.zeros(self.max_state_dim, np.float32)
        state[: len(frame.state)] = frame.state
        if frame.actions is None:
            return dataclasses.replace(frame, state=state)
        dim = self.action_dims[frame.tag]
        actions = np.zeros((self.horizon, self.max_action_dim), np.float32)
        actions[:, :dim] = frame.actions
        valid = np.ones(self.horizon, bool) if frame.action_valid is None else np.asarray(frame.action_valid, bool)
        mask = np.zeros((self.horizon, self.max_action_dim), bool)
        mask[valid, :dim] = True
        return dataclasses.replace(frame, state=state, actions=actions, action_mask=mask)

    def inverse(self, frame: Frame) -> Frame:
        if frame.actions is None:
            return frame
        return dataclasses.replace(frame, actions=frame.actions[..., : self.action_dims[frame.tag]])


@dataclass(frozen=True)
class NormalizeEnvState:
    """The auxiliary probe's target: privileged env state [E] normalized with the probe's stats (training only; a
    frame without it passes unchanged, and the training collation insists on it)."""

    aux: AuxProbeConfig

    def __call__(self, frame: Frame) -> Frame:
        if frame.env_state is None:
            return frame
        values = np.asarray(frame.env_state, np.float64)
        if values.shape != (self.aux.dim,) or not np.all(np.isfinite(values)):
            raise ValueError(f"env_state must be {self.aux.dim} finite values, got {values}")
        return dataclasses.replace(frame, env_state=self.aux.normalize(values).astype(np.float32))
