"""Bookkeeping every input stream shares: what was received, accepted and rejected (by reason), and the stamp
order check. One rejection counter per input keeps "why was this message not used" answerable in the status."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class InputStats:
    received: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_error: str = ""

    def reject(self, reason: str, message: str) -> bool:
        """Count a rejection; False so callers can `return stats.reject(...)`. The message is kept for the
        status, cut to a readable length (it may quote what a message carried)."""
        self.rejected[reason] += 1
        self.last_error = message if len(message) <= 300 else message[:297] + "..."
        return False


class StampOrder:
    """Per-input header-stamp order, judged against the node's clock: a message must be newer than the last one
    accepted on its input and not stamped more than `future_tolerance` ahead of the node's time. A stamp from
    the future is rejected *before* it is remembered, so it cannot make every later, correct stamp look old."""

    def __init__(self, inputs: tuple[str, ...], future_tolerance: float = math.inf) -> None:
        self.last = dict.fromkeys(inputs, -math.inf)
        self.future_tolerance = future_tolerance

    def check(self, name: str, stamp: float, stats: InputStats, now: float) -> bool:
        """True (and the stamp remembered) if `stamp` may be used; else the rejection is counted in `stats`."""
        if not math.isfinite(stamp):
            return stats.reject("bad_stamp", f"{name}: non-finite stamp")
        if stamp > now + self.future_tolerance:
            return stats.reject("future_stamp", f"{name}: stamp {stamp:.6f} is {stamp - now:.3f} s ahead of the "
                                f"node's clock (tolerance {self.future_tolerance} s)")
        last = self.last[name]
        if stamp <= last:
            return stats.reject("out_of_order", f"{name}: stamp {stamp:.6f} not after {last:.6f}")
        self.last[name] = stamp
        return True

    def reset(self) -> None:
        for name in self.last:
            self.last[name] = -math.inf
