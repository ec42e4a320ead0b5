"""Keep a library from making this process real-time behind its back.

SVT-AV1 (LeRobot's default video encoder, through PyAV) puts the thread that opens an encoder, and the worker
threads it starts, at SCHED_FIFO priority 99 wherever it may (as root, as in most robot containers), and never
sets them back nor SCHED_RESET_ON_FORK. A dataset conversion on the robot's computer would then out-rank the
control nodes' real-time threads (SCHED_FIFO 50, `realtime_priority`) with a CPU-bound encoder, and every
process it starts afterwards would inherit priority 99. Measured here: `vla_bag_to_dataset` and the test suite
(its node processes, mypy) ran at SCHED_FIFO 99 after the first AV1 file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_REALTIME = tuple(getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name))
_POLICY = ~getattr(os, "SCHED_RESET_ON_FORK", 0)  # the policy without the flag


def realtime_threads() -> set[int]:
    """Native ids of this process's threads in a real-time scheduling class (empty where Linux's /proc is not)."""
    if not _REALTIME or not os.path.isdir("/proc/self/task"):
        return set()
    found = set()
    for name in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if os.sched_getscheduler(int(name)) & _POLICY in _REALTIME:
                found.add(int(name))
    return found


@contextlib.contextmanager
def normal_scheduling() -> Iterator[None]:
    """Every thread of this process that the block put in a real-time class goes back to normal scheduling
    (threads that were real-time before it stay as they were)."""
    before = realtime_threads()
    try:
        yield
    finally:
        for tid in realtime_threads() - before:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
