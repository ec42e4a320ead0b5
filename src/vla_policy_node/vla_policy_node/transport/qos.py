"""QoS profiles as plain data, with the presets a robot node needs; each backend maps them to its own API.

Rules that come from how DDS matches endpoints (a mismatch silently delivers nothing):
publish RELIABLE (serves both reliable and best-effort subscribers); subscribe BEST_EFFORT to sensor streams
and RELIABLE to commands; latched topics are TRANSIENT_LOCAL on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reliability(StrEnum):
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Durability(StrEnum):
    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QosProfile:
    """Keep-last history of `depth` samples with the given reliability and durability; `lifespan` (seconds,
    None: infinite) drops samples older than that from what a writer keeps for late joiners (rcl's /rosout)."""

    reliability: Reliability = Reliability.RELIABLE
    durability: Durability = Durability.VOLATILE
    depth: int = 10
    lifespan: float | None = None

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"QoS depth must be >= 1, got {self.depth}")
        if self.lifespan is not None and not self.lifespan > 0:
            raise ValueError(f"QoS lifespan must be positive seconds or None, got {self.lifespan}")
        object.__setattr__(self, "reliability", Reliability(self.reliability))
        object.__setattr__(self, "durability", Durability(self.durability))

    @property
    def reliable(self) -> bool:
        return self.reliability == Reliability.RELIABLE

    @property
    def transient_local(self) -> bool:
        return self.durability == Durability.TRANSIENT_LOCAL


DEFAULT_QOS = QosProfile(Reliability.RELIABLE, Durability.VOLATILE, 10)
"""rclpy's default profile (qos_profile_default with depth 10): publishers and command subscribers."""

SENSOR_DATA_QOS = QosProfile(Reliability.BEST_EFFORT, Durability.VOLATILE, 5)
"""rclpy's qos_profile_sensor_data: subscribe to cameras and joint states with this."""

LATCHED_QOS = QosProfile(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, 1)
"""Last value is delivered to late joiners (status, robot description, markers)."""

SERVICES_QOS = QosProfile(Reliability.RELIABLE, Durability.VOLATILE, 10)
"""rmw_qos_profile_services_default."""
