"""Watchdog: whether the policy may drive the arm right now, and if not, why.

The policy is held (teleop still works) while observations are stale, while an inference has been running
longer than its timeout, or after a model fault (an exception, or a chunk that is not finite / does not fit
the embodiment) until a good chunk arrives. The tick asks `policy_blocked` (cheap); the status asks `reasons`.
"""

from __future__ import annotations

from vla_policy_node.control.config import WatchdogConfig
from vla_policy_node.control.executor import ChunkExecutor
from vla_policy_node.control.sync import ObservationSync


class Watchdog:
    def __init__(self, config: WatchdogConfig | None = None) -> None:
        self.config = config or WatchdogConfig()
        self.model_fault = ""
        self.model_errors = 0

    def on_model_error(self, message: str) -> None:
        self.model_fault = message
        self.model_errors += 1

    def on_good_chunk(self) -> None:
        self.model_fault = ""

    def policy_blocked(self, now: float, sync: ObservationSync, executor: ChunkExecutor) -> bool:
        if self.model_fault or executor.inference_overdue(now):
            return True
        return self.config.hold_on_stale and sync.any_stale(now)

    def reasons(self, now: float, sync: ObservationSync, executor: ChunkExecutor) -> list[str]:
        out = []
        if self.model_fault:
            out.append(self.model_fault)
        since = executor.in_flight_since
        if since is not None and executor.inference_overdue(now):
            out.append(f"no inference result for {now - since:.2f}s (timeout {executor.config.inference_timeout}s)")
        if self.config.hold_on_stale:
            ages = sync.input_ages(now)
            stale = sync.stale_inputs(now)
            if stale:
                out.append("no fresh observation: " + ", ".join(f"{n} {ages[n]:.3f}s old" for n in stale))
        return out
