"""Pairing messages of several inputs into sets, the two ways `SyncConfig.mode` offers.

ApproximateTimePairing follows message_filters' Python ApproximateTimeSynchronizer: each input keeps its
`queue_size` newest messages; when one arrives, the candidates of every other input within `slop` of it are
tried nearest first, and the first combination whose stamps span less than `slop` is emitted and removed.

TriggerPairing emits a set for every message of the trigger input, with the newest message of each
`before_only` input at or before it and the nearest message of every other input, each within `slop`.

Payloads are opaque here; stamps are float seconds.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from typing import Any

MatchedSet = dict[str, tuple[float, Any]]


class ApproximateTimePairing:
    def __init__(self, inputs: tuple[str, ...], queue_size: int, slop: float) -> None:
        self.inputs = inputs
        self.queue_size = queue_size
        self.slop = slop
        self._queues: dict[str, dict[float, Any]] = {name: {} for name in inputs}
        self.dropped = 0  # messages pushed out of a full queue without being used

    def add(self, name: str, stamp: float, payload: Any) -> MatchedSet | None:
        queue = self._queues[name]
        queue[stamp] = payload
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.dropped += 1
        candidates = []
        slop = self.slop
        for other in self.inputs:
            if other == name:
                continue
            near = sorted((d, s) for s in self._queues[other] if (d := abs(s - stamp)) <= slop)
            if not near:
                return None
            candidates.append([s for _, s in near])
        others = [n for n in self.inputs if n != name]
        for combo in itertools.product(*candidates):
            stamps = (*combo, stamp)
            if max(stamps) - min(stamps) < self.slop:
                chosen = dict(zip(others, combo, strict=True))
                chosen[name] = stamp
                return {n: (s, self._queues[n].pop(s)) for n, s in chosen.items()}
        return None


class TriggerPairing:
    def __init__(
        self,
        inputs: tuple[str, ...],
        trigger: str,
        before_only: tuple[str, ...],
        history: int,
        slop: float,
    ) -> None:
        if trigger not in inputs:
            raise ValueError(f"trigger input {trigger!r} is not one of {inputs}")
        self.inputs = inputs
        self.trigger = trigger
        self.before_only = before_only
        self.slop = slop
        self._stamps: dict[str, deque[float]] = {n: deque(maxlen=history) for n in inputs}
        self._payloads: dict[str, deque[Any]] = {n: deque(maxlen=history) for n in inputs}
        self.unmatched = 0
        self.last_miss = ""

    def add(self, name: str, stamp: float, payload: Any) -> MatchedSet | None:
        """Stamps of one input must increase (ObservationSync rejects the others before they get here)."""
        self._stamps[name].append(stamp)
        self._payloads[name].append(payload)
        if name != self.trigger:
            return None
        matched: MatchedSet = {name: (stamp, payload)}
        for other in self.inputs:
            if other == name:
                continue
            found = self._nearest(other, stamp, other in self.before_only)
            if found is None:
                self.unmatched += 1
                where = "before" if other in self.before_only else "of"
                self.last_miss = f"no {other} message within {self.slop}s {where} {stamp:.6f}"
                return None
            matched[other] = found
        return matched

    def _nearest(self, name: str, stamp: float, before_only: bool) -> tuple[float, Any] | None:
        stamps = self._stamps[name]
        if not stamps:
            return None
        seq = list(stamps)
        i = bisect.bisect_right(seq, stamp)  # seq[:i] <= stamp < seq[i:]
        best: int | None = None
        if i > 0 and stamp - seq[i - 1] <= self.slop:
            best = i - 1
        later_ok = not before_only and i < len(seq) and seq[i] - stamp <= self.slop
        if later_ok and (best is None or seq[i] - stamp < stamp - seq[best]):
            best = i
        if best is None:
            return None
        return seq[best], self._payloads[name][best]
