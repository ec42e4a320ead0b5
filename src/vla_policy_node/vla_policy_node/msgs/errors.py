"""A bad incoming message is an expected event on a robot, not a crash: one error type, and a counter.

Every decoder raises `MessageError` with a short machine-readable `problem` (for counting and diagnostics)
and a human sentence naming what was wrong. Nodes wrap decoders with `MessageErrorCounter.decode` so a
garbled camera frame is counted and dropped instead of reaching the model.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class MessageError(ValueError):
    """A message that cannot be converted into something the core may trust.

    problem: short slug such as "unknown_encoding", "size_mismatch", "non_finite", "length_mismatch",
    "corrupt_image"; msgtype: the ROS type the message claimed to be (may be empty).
    """

    def __init__(self, problem: str, detail: str, msgtype: str = "") -> None:
        self.problem = problem
        self.detail = detail
        self.msgtype = msgtype
        prefix = f"{msgtype}: " if msgtype else ""
        super().__init__(f"{prefix}{problem}: {detail}")


class MessageErrorCounter:
    """Thread-safe tally of rejected messages by (topic, problem), for diagnostics and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last: dict[str, MessageError] = {}

    def record(self, error: MessageError, topic: str = "") -> None:
        with self._lock:
            self._counts[(topic, error.problem)] += 1
            self._last[topic] = error

    def decode(self, decoder: Callable[..., T], msg: Any, *args: Any, topic: str = "", **kwargs: Any) -> T | None:
        """Run `decoder(msg, ...)`; on MessageError count it and return None instead of raising."""
        try:
            return decoder(msg, *args, **kwargs)
        except MessageError as error:
            self.record(error, topic)
            return None

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def counts(self) -> dict[tuple[str, str], int]:
        """(topic, problem) -> count."""
        with self._lock:
            return dict(self._counts)

    def by_problem(self) -> dict[str, int]:
        with self._lock:
            out: Counter[str] = Counter()
            for (_, problem), n in self._counts.items():
                out[problem] += n
            return dict(out)

    def last_error(self, topic: str = "") -> MessageError | None:
        with self._lock:
            return self._last.get(topic)
