"""Policy-level types shared by the model, the control runtime and the nodes (numpy only)."""

from vla_policy_node.spec.embodiment import ConfigError, Embodiment, load_embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, ObservationError, RtcPrefix

__all__ = [
    "ActionChunk",
    "ConfigError",
    "Embodiment",
    "Observation",
    "ObservationError",
    "RtcPrefix",
    "load_embodiment",
]
