"""Where a ControlLoop's policy command comes from, once per tick (`sample`), and what it reports about itself.

- `ChunkSource` (the policy node): observations -> (inference thread) chunks -> the ChunkExecutor's plan,
  gated by the watchdog (stale observations, model faults, overdue inference).
- `CommandStream` (the command mux): the newest command a policy node sent, while younger than `timeout`
  (a policy node that dies or stalls loses control).

Neither takes a lock: ControlLoop serialises every call.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Protocol

import numpy as np

from vla_policy_node.control.command import ChunkError, CommandSpace, LateChunkError
from vla_policy_node.control.config import ControlConfig
from vla_policy_node.control.executor import ChunkExecutor, PreparedMerge
from vla_policy_node.control.status import Diagnostic, Level
from vla_policy_node.control.sync import JOINT_STATES, ObservationSync
from vla_policy_node.control.watchdog import Watchdog
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix

POLICY_INPUT = "policy_command"
Planned = tuple[np.ndarray, float | None]


class PolicySource(Protocol):
    """What ControlLoop needs from a policy source (see the module docstring)."""

    def sample(self, now: float) -> Planned | None: ...

    def clear(self) -> None: ...

    def clock_jumped(self, shift: float) -> None: ...

    def starved(self, now: float) -> bool: ...

    def fault(self, now: float) -> str: ...

    def hold_reasons(self, now: float) -> list[str]: ...

    def input_ages(self, now: float) -> dict[str, float]: ...

    def stale_inputs(self, now: float) -> list[str]: ...

    def diagnostics(self, now: float, ages: dict[str, float], stale: tuple[str, ...],
                    rejections: tuple[tuple[str, int], ...]) -> list[Diagnostic]: ...


class ChunkSource:
    def __init__(self, embodiment: Embodiment, space: CommandSpace, config: ControlConfig) -> None:
        self.space = space
        self.strategy = config.executor.strategy
        self.sync = ObservationSync(embodiment, config.sync)
        self.executor = ChunkExecutor(space, config.executor, embodiment.rates.inference_hz)
        self.watchdog = Watchdog(config.watchdog)
        self._n = space.arm_dim
        self._has_gripper = space.gripper_name is not None
        self._obs_states: OrderedDict[float, np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------------------------------ tick path
    def sample(self, now: float) -> Planned | None:
        if self.watchdog.policy_blocked(now, self.sync, self.executor):
            return None
        planned = self.executor.sample(now)
        if planned is None:
            return None
        return planned[: self._n], (float(planned[self._n]) if self._has_gripper else None)

    def clear(self) -> None:
        self.executor.clear()

    def set_strategy(self, strategy: str) -> None:
        self.executor.set_strategy(strategy)
        self.strategy = self.executor.config.strategy

    def clock_jumped(self, shift: float) -> None:
        """Stamps of the old timeline mean nothing now: start the sync and the executor afresh."""
        self.sync.reset()
        self.executor.reset()
        self._obs_states.clear()

    # ------------------------------------------------------------------------------------------ inference
    def begin(self, obs: Observation, now: float) -> RtcPrefix | None:
        """Mark `obs` as sent to the model; the RTC prefix to condition on (rtc strategy, once a plan exists).
        Expected latency = the observation's age now + the measured inference quantile."""
        ex = self.executor
        ex.mark_requested(now)
        self._obs_states[obs.stamp] = np.asarray(obs.state, dtype=np.float64)
        while len(self._obs_states) > 16:
            self._obs_states.popitem(last=False)
        if self.strategy != "rtc":
            return None
        expected = max(now - obs.stamp, 0.0) + ex.expected_latency()
        return ex.rtc_prefix(obs.stamp, expected, reference_state=obs.state)

    def convert(self, chunk: ActionChunk) -> tuple[np.ndarray, np.ndarray | None]:
        """Command-space arm/gripper of a chunk (joint deltas resolved against its observation's state)."""
        return self.space.convert_chunk(chunk, self._obs_states.get(chunk.stamp))

    def prepare(self, arm: np.ndarray, gripper: np.ndarray | None, chunk: ActionChunk, now: float) -> PreparedMerge:
        return self.executor.prepare(arm, gripper, chunk.stamp, chunk.dt, now)

    def commit(self, prepared: PreparedMerge) -> bool:
        if not self.executor.commit(prepared):
            return False
        self.watchdog.on_good_chunk()
        return True

    def reject(self, exc: ChunkError) -> bool:
        self.executor.mark_rejected(str(exc))
        if not isinstance(exc, LateChunkError):  # late is normal under load; malformed is a model fault
            self.watchdog.on_model_error(f"bad chunk: {exc}")
        return False

    def on_error(self, exc: BaseException) -> str:
        """The model raised: the policy holds until a good chunk arrives. Returns the fault text."""
        self.executor.mark_failed()
        self.watchdog.on_model_error(f"model exception: {type(exc).__name__}: {exc}")
        return self.watchdog.model_fault

    # --------------------------------------------------------------------------------------------- status
    def starved(self, now: float) -> bool:
        plan = self.executor.plan
        return plan is None or now > plan.t_end

    def fault(self, now: float) -> str:
        if self.watchdog.model_fault:
            return self.watchdog.model_fault
        if self.executor.inference_overdue(now):
            return "inference timeout"
        return ""

    def hold_reasons(self, now: float) -> list[str]:
        reasons = self.watchdog.reasons(now, self.sync, self.executor)
        if self.starved(now):
            reasons.append("executor starved: no action planned for now")
        return reasons

    def input_ages(self, now: float) -> dict[str, float]:
        return self.sync.input_ages(now)

    def stale_inputs(self, now: float) -> list[str]:
        return self.sync.stale_inputs(now)

    def diagnostics(self, now: float, ages: dict[str, float], stale: tuple[str, ...],
                    rejections: tuple[tuple[str, int], ...]) -> list[Diagnostic]:
        ex = self.executor
        values = tuple((name, f"{age:.3f}") for name, age in ages.items())
        inputs = Diagnostic(Level.WARN if stale else Level.OK, "observation inputs",
                            ("stale: " + ", ".join(stale)) if stale else "all inputs fresh",
                            values + tuple((k, str(v)) for k, v in rejections))
        fault = self.fault(now)
        if fault:
            level, msg = Level.ERROR, fault
        elif self.starved(now) and self.strategy != "synchronous":
            level, msg = Level.WARN, "starved: no action planned for now"
        else:
            level, msg = Level.OK, f"{self.strategy}, {ex.chunk_rate.rate(now):.1f} Hz"
        inference = Diagnostic(level, "inference", msg, (
            ("strategy", self.strategy), ("inference_rate", f"{ex.chunk_rate.rate(now):.2f}"),
            ("latency_p50", f"{ex.latency.p50:.4f}"), ("latency_p99", f"{ex.latency.p99:.4f}"),
            ("chunks_accepted", str(ex.accepted)), ("chunks_rejected", str(ex.rejected)),
            ("in_flight", str(ex.in_flight_since is not None))))
        return [inputs, inference]


class CommandStream:
    """The policy node's command stream as the mux receives it: usable while younger than `timeout`."""

    def __init__(self, space: CommandSpace, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError("policy_timeout must be positive")
        self.space = space
        self.timeout = float(timeout)
        self._arm: np.ndarray | None = None
        self._gripper: float | None = None
        self._time = -math.inf
        self.received = 0

    def on_command(self, arm: np.ndarray, now: float) -> None:
        arm = np.asarray(arm, dtype=np.float64).reshape(-1)
        if arm.shape != (self.space.arm_dim,):
            raise ValueError(f"policy command needs {self.space.arm_dim} values {self.space.arm_names}, "
                             f"got {arm.size}")
        self._arm, self._time = arm, now
        self.received += 1

    def on_gripper(self, position: float) -> None:
        self._gripper = float(position)

    def sample(self, now: float) -> Planned | None:
        if self._arm is None or now - self._time > self.timeout:
            return None
        return self._arm, self._gripper

    def clear(self) -> None:
        """Nothing to drop: the stream's next message is the policy node's current command."""

    def clock_jumped(self, shift: float) -> None:
        self._time += shift

    def starved(self, now: float) -> bool:
        return now - self._time > self.timeout

    def fault(self, now: float) -> str:
        return ""

    def hold_reasons(self, now: float) -> list[str]:
        return []

    def input_ages(self, now: float) -> dict[str, float]:
        return {POLICY_INPUT: max(now - self._time, 0.0)}

    def stale_inputs(self, now: float) -> list[str]:
        return [POLICY_INPUT] if self.starved(now) else []

    def diagnostics(self, now: float, ages: dict[str, float], stale: tuple[str, ...],
                    rejections: tuple[tuple[str, int], ...]) -> list[Diagnostic]:
        values = tuple((name, f"{age:.3f}") for name, age in ages.items())
        return [Diagnostic(Level.WARN if stale else Level.OK, "inputs",
                           ("stale: " + ", ".join(stale)) if stale else "all inputs fresh",
                           values + tuple((k, str(v)) for k, v in rejections))]


__all__ = ["JOINT_STATES", "POLICY_INPUT", "ChunkSource", "CommandStream", "PolicySource"]
