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
        """Count a rejection; False so callers can `return stats.reject(...)`."""
        self.rejected[reason] += 1
        self.last_error = message
        return False


class StampOrder:
    """Per-input header-stamp order: a message must be newer than the last one accepted on its input."""

    def __init__(self, inputs: tuple[str, ...]) -> None:
        self.last = dict.fromkeys(inputs, -math.inf)

    def check(self, name: str, stamp: float, stats: InputStats) -> bool:
        """True (and the stamp remembered) if `stamp` may be used; else the rejection is counted in `stats`."""
        if not math.isfinite(stamp):
            return stats.reject("bad_stamp", f"{name}: non-finite stamp")
        last = self.last[name]
        if stamp <= last:
            return stats.reject("out_of_order", f"{name}: stamp {stamp:.6f} not after {last:.6f}")
        self.last[name] = stamp
        return True

    def reset(self) -> None:
        for name in self.last:
            self.last[name] = -math.inf
