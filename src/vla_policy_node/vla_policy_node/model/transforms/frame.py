"""One sample on its way through the pipeline: what a training sample or a served observation becomes.

Input steps fill it in step by step (cameras chosen and resized, state and actions normalized and padded, the
embodiment's slot index); output steps take a prediction back (actions unpadded and unnormalized).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.types import Observation


@dataclass(frozen=True)
class Frame:
    """tag: the embodiment; images: camera name -> HxWx3 uint8 RGB (after camera selection: exactly the
    checkpoint's cameras, in its order); state: [S] (physical, then normalized and padded); actions: [H, D]
    (training and RTC prefixes; physical, then normalized and padded to [H, max_action_dim]); action_valid: [H]
    False for steps past an episode's end; action_mask: [H, max_action_dim] set by padding; env_state: [E]
    privileged scene state for the auxiliary loss (training only); category: the embodiment's slot index."""

    tag: str
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    state: np.ndarray = field(default_factory=lambda: np.zeros(0))
    instruction: str = ""
    actions: np.ndarray | None = None
    action_valid: np.ndarray | None = None
    action_mask: np.ndarray | None = None
    env_state: np.ndarray | None = None
    category: int = -1

    @classmethod
    def from_observation(cls, observation: Observation, tag: str, *, native: bool = False) -> Frame:
        """native: the frames as received (`FittedImages.native`), for a pipeline whose batch step fits them
        itself (the fast path); otherwise the observation's images as they read (fitted to the robot's cameras)."""
        images = observation.images
        if native and isinstance(images, FittedImages):
            images = {name: images.native(name) for name in images}
        return cls(tag=tag, images=images, state=np.asarray(observation.state), instruction=observation.instruction)
