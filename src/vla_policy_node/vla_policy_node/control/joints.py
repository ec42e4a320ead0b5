"""Joint-state messages -> the measured state both nodes anchor on, or a counted rejection.

Names + positions are reordered into the embodiment's `state_names` (arm joints, then the gripper); extra names
are ignored, missing or repeated ones reject the message, as do NaN/Inf positions, stamps out of order or from
the future, and readings that are not plausible (control/plausibility.py: a sensor fault is never a measurement).
The policy node's ObservationSync and the command mux feed their joint states through this one gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from vla_policy_node.control.inputs import InputStats, StampOrder
from vla_policy_node.control.plausibility import Plausibility
from vla_policy_node.control.small_arrays import all_finite


class JointReading(NamedTuple):
    """An accepted joint state: header stamp, arrival time on the node's clock, positions (state_names order)."""

    stamp: float
    arrival: float
    state: np.ndarray


class JointStateGate:
    def __init__(self, state_names: tuple[str, ...], name: str, stats: InputStats,
                 order: StampOrder | None) -> None:
        """order: the header-stamp order check (None: stamps are not judged, e.g. freshness by arrival)."""
        self.state_names = state_names
        self.name = name
        self.stats = stats
        self.order = order
        self.plausibility: Plausibility | None = None  # set by the ControlLoop that owns the gate
        self.latest: JointReading | None = None
        self._perm_cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def accept(self, stamp: float, names: Sequence[str], positions: Sequence[float] | np.ndarray,
               now: float) -> np.ndarray | None:
        """The state in `state_names` order, or None (the reason counted in `stats`)."""
        stats = self.stats
        stats.received += 1
        names = tuple(names)
        values = np.asarray(positions, dtype=np.float64).reshape(-1)
        if len(names) != len(values):
            stats.reject("malformed", f"joint state has {len(names)} names, {len(values)} positions")
            return None
        perm = self._permutation(names)
        if perm is None:
            return None
        state = values[perm]
        if not all_finite(state):
            stats.reject("nonfinite", "joint state has NaN/Inf positions")
            return None
        if self.order is not None and not self.order.check(self.name, stamp, stats, now):
            return None
        if self.plausibility is not None:
            problem = self.plausibility.check(state, now, stamp)
            if problem:
                stats.reject("implausible", f"sensor fault: {problem}")
                return None
        stats.accepted += 1
        self.latest = JointReading(stamp, now, state)
        return state

    def _permutation(self, names: tuple[str, ...]) -> np.ndarray | None:
        cache = self._perm_cache
        if cache is not None and cache[0] == names:
            return cache[1]
        index = {n: i for i, n in enumerate(names)}
        if len(index) != len(names):
            self.stats.reject("malformed", f"joint state repeats names: {list(names)}")
            return None
        missing = [n for n in self.state_names if n not in index]
        if missing:
            self.stats.reject("missing_joints", f"joint state lacks {missing}")
            return None
        perm = np.array([index[n] for n in self.state_names], dtype=np.int64)
        self._perm_cache = (names, perm)
        return perm

    def reset(self) -> None:
        self.latest = None

    def rebase(self, shift: float) -> None:
        """The node's clock jumped by `shift`: the newest reading arrived that much earlier on the new clock."""
        if self.latest is not None:
            self.latest = self.latest._replace(arrival=self.latest.arrival + shift)
