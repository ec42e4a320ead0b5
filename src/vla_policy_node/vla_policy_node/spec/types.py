"""The data that crosses every layer: one observation in, one time-stamped action chunk out.

Plain numpy and floats (seconds) so the control runtime, the model and every transport share them
without importing torch or ROS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


class ObservationError(ValueError):
    """An observation that must not reach the model (wrong image, missing camera, bad state)."""


@dataclass(frozen=True)
class Observation:
    """What the robot saw at `stamp`.

    images: camera name -> HxWx3 uint8 RGB.
    state: proprioception in the embodiment's `state_names` order (joint positions, then gripper).
    """

    stamp: float
    images: Mapping[str, np.ndarray]
    state: np.ndarray
    instruction: str
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionChunk:
    """H future actions: `actions[k]` is the command for time `stamp + k * dt`, in physical units.

    `stamp` is the stamp of the observation the chunk answers, so latency can be compensated downstream.
    """

    stamp: float
    dt: float
    actions: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions, dtype=np.float64)
        if actions.ndim != 2:
            raise ValueError(f"ActionChunk.actions must be [H, D], got shape {actions.shape}")
        if actions.shape[1] != len(self.names):
            raise ValueError(
                f"ActionChunk has {actions.shape[1]} action dims but {len(self.names)} names"
            )
        if not self.dt > 0:
            raise ValueError(f"ActionChunk.dt must be positive, got {self.dt}")
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def times(self) -> np.ndarray:
        """Absolute time of each action."""
        return self.stamp + self.dt * np.arange(self.horizon)


@dataclass(frozen=True)
class RtcPrefix:
    """What real-time chunking asks the sampler to respect in the next chunk.

    Built by the control runtime from the chunk that is executing; consumed by the model's guided sampler.
    `actions[k]` is the previously planned action at the new chunk's time `k` (physical units, [H, D]);
    `weights[k]` in [0, 1] is how strongly the new chunk must follow it: 1 for actions that will already have
    been executed when the new chunk arrives (frozen), decaying to 0 over the blend region, 0 after it.
    """

    actions: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions, dtype=np.float64)
        weights = np.asarray(self.weights, dtype=np.float64)
        if actions.ndim != 2 or weights.shape != (actions.shape[0],):
            raise ValueError(f"RtcPrefix needs actions [H, D] and weights [H]; got {actions.shape}, {weights.shape}")
        if np.any((weights < 0) | (weights > 1)) or not np.all(np.isfinite(actions)):
            raise ValueError("RtcPrefix weights must lie in [0, 1] and actions must be finite")
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "weights", weights)

    @property
    def frozen(self) -> int:
        """Number of leading actions with weight 1."""
        n = 0
        while n < len(self.weights) and self.weights[n] >= 1.0:
            n += 1
        return n
