"""Holes in a recorded sensor stream, found from its header stamps while recording.

A recording that lost samples (DDS dropped them, the driver stalled, the recorder fell behind its subscription)
should say so when it ends, not leave the conversion to find out later by splitting episodes at the gap. The
stream's own rhythm is the reference (robot configs do not state sensor rates): an interval between consecutive
stamps longer than `factor` times the median of the recent intervals is a hole.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field


@dataclass
class StampGaps:
    """Counts holes in one stream of header stamps (seconds), fed in arrival order. Stamps that do not move
    forward (repeats, out of order) are counted as messages but never start or end an interval."""

    factor: float = 2.5  # an interval over factor x the typical one is a hole: two or more samples in a row missing
    window: int = 101  # recent intervals the typical one is the median of
    warmup: int = 10  # intervals seen before holes are judged
    messages: int = 0
    holes: int = 0
    longest: float = 0.0  # s: the longest hole
    typical: float = 0.0  # s: the median interval, refreshed every `window` // 4 intervals
    _last: float | None = field(default=None, init=False, repr=False)
    _recent: deque[float] = field(default_factory=deque, init=False, repr=False)
    _since_median: int = field(default=0, init=False, repr=False)

    def add(self, stamp: float) -> None:
        self.messages += 1
        last = self._last
        if last is not None and stamp <= last:
            return
        self._last = stamp
        if last is None:
            return
        interval = stamp - last
        if len(self._recent) >= self.warmup and interval > self.factor * self.typical:
            self.holes += 1
            self.longest = max(self.longest, interval)
        self._recent.append(interval)
        if len(self._recent) > self.window:
            self._recent.popleft()
        self._since_median += 1
        if len(self._recent) <= self.warmup or self._since_median >= max(1, self.window // 4):
            self.typical = statistics.median(self._recent)
            self._since_median = 0

    def summary(self) -> dict[str, float | int]:
        return {"messages": self.messages, "holes": self.holes, "longest_s": self.longest,
                "typical_s": self.typical}

    def describe(self, topic: str) -> str:
        """One line for the operator, e.g. after a recording."""
        if not self.holes:
            return f"{topic}: {self.messages} messages, no holes"
        return (f"{topic}: {self.messages} messages, {self.holes} hole(s) over {self.factor:g}x its typical "
                f"{self.typical * 1e3:.1f} ms between stamps (longest {self.longest * 1e3:.0f} ms): samples were "
                "lost or never sent")
