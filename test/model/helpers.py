"""Tiny-model test data for the sim arm: observations with a colored block, normalization from joint limits."""

from __future__ import annotations

import numpy as np

from vla_policy_node.spec import Embodiment, Observation
from vla_policy_node.spec.normalization import normalization_from_limits as limits_normalization

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220), "yellow": (230, 220, 30)}


def observation(emb: Embodiment, color: str = "red", stamp: float = 1.0, state=None) -> Observation:
    images = {}
    for cam in emb.cameras:
        img = np.full((cam.height, cam.width, 3), 90, np.uint8)
        img[cam.height // 4: cam.height // 2, cam.width // 4: cam.width // 2] = COLORS[color]
        images[cam.name] = img
    state = np.linspace(-0.3, 0.3, emb.state_dim) if state is None else state
    return Observation(
        stamp=stamp, images=images, state=np.asarray(state, float), instruction=f"reach the {color} block"
    )

__all__ = ["COLORS", "limits_normalization", "observation"]
