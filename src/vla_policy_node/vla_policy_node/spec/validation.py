"""Checks an observation against its embodiment before it may reach a model.

A wrong image, a missing camera or a NaN joint must stop here with a message naming the problem; a model fed
garbage returns plausible-looking garbage, which is the worst failure on a command path.
"""

from __future__ import annotations

import numpy as np

from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.types import Observation, ObservationError


def validate_observation(obs: Observation, embodiment: Embodiment) -> None:
    """Raise ObservationError unless `obs` has every camera at its size as RGB uint8 and a finite state."""
    if not np.isfinite(obs.stamp):
        raise ObservationError(f"observation stamp is not finite: {obs.stamp}")
    missing = [name for name in embodiment.camera_names if name not in obs.images]
    if missing:
        raise ObservationError(
            f"observation is missing camera(s) {missing} required by {embodiment.name!r} "
            f"(got {sorted(obs.images)})"
        )
    images = obs.images
    fitted = isinstance(images, FittedImages)  # fitted to the camera sizes when read: check what came in
    for cam in embodiment.cameras:
        image = images.native(cam.name) if isinstance(images, FittedImages) else images[cam.name]
        if not isinstance(image, np.ndarray):
            raise ObservationError(f"camera {cam.name!r}: image must be a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ObservationError(f"camera {cam.name!r}: image dtype must be uint8 RGB, got {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ObservationError(f"camera {cam.name!r}: image must be HxWx3 RGB, got shape {image.shape}")
        if not fitted and image.shape[:2] != (cam.height, cam.width):
            raise ObservationError(
                f"camera {cam.name!r}: image is {image.shape[0]}x{image.shape[1]} (HxW) but the embodiment "
                f"expects {cam.height}x{cam.width}; resize it with policy.images.fit_image"
            )
    state = np.asarray(obs.state)
    if state.ndim != 1 or state.shape[0] != embodiment.state_dim:
        raise ObservationError(
            f"state must have {embodiment.state_dim} values {embodiment.state_names}, got shape {state.shape}"
        )
    if not np.issubdtype(state.dtype, np.number):
        raise ObservationError(f"state must be numeric, got dtype {state.dtype}")
    bad = ~np.isfinite(state.astype(np.float64))
    if bad.any():
        names = [n for n, b in zip(embodiment.state_names, bad, strict=True) if b]
        raise ObservationError(f"state has NaN/Inf in {names}")
    if not isinstance(obs.instruction, str):
        raise ObservationError(f"instruction must be a string, got {type(obs.instruction).__name__}")
