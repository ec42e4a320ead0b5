"""The one interface every policy offers to the runtime: observation in, time-stamped action chunk out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix


@runtime_checkable
class Policy(Protocol):
    """A policy bound to one embodiment. Implementations must be safe to call from an inference thread."""

    @property
    def embodiment(self) -> Embodiment: ...

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        """Predict the chunk answering `observation`; `prefix` asks for real-time-chunking guidance."""
        ...

    def infer_batch(
        self, observations: Sequence[Observation], *, prefixes: Sequence[RtcPrefix | None] | None = None
    ) -> list[ActionChunk]:
        """Several observations in one forward pass."""
        ...
