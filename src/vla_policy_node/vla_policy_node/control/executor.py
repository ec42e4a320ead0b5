"""Chunk execution: time-stamped chunks in, one continuous plan out, sampled at the control rate.

Every strategy ends in the same shape: when a chunk arrives at `now`, a new plan is built on a grid starting
exactly at `now` (spacing = the chunk's dt) and swapped in whole. Strategies differ only in what the new plan
aims at:

- synchronous: the first `execute_steps` actions of the newest chunk; a new chunk is requested when they are
  done (the plan runs dry meanwhile and the executor reports itself starved: that is what synchronous means);
- ensemble: ACT's temporal ensembling, sum_i w_i a_i(t) / sum_i w_i with w_i = exp(-m i), i = 0 the oldest
  chunk covering t;
- rtc: the newest chunk, which the sampler already conditioned on `rtc_prefix` (the frozen part).

For all of them the plan equals the running plan up to `now` and blends into the target with RTC's soft
mask over `blend_steps`, so a new chunk never moves the command discontinuously. Actions whose time has
passed are never executed: the plan is evaluated at wall-clock time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from vla_policy_node.control.command import ChunkError, CommandSpace, LateChunkError
from vla_policy_node.control.config import ExecutorConfig
from vla_policy_node.control.ensemble import ensemble_weights
from vla_policy_node.control.latency import LatencyTracker, RateMeter
from vla_policy_node.control.rtc import blend_weights, frozen_steps, prefix_weights
from vla_policy_node.control.trajectory import Trajectory
from vla_policy_node.spec.deployment import as_strategy
from vla_policy_node.spec.types import RtcPrefix

_MAX_ENSEMBLE_CHUNKS = 64


@dataclass(frozen=True)
class PreparedMerge:
    """A plan built by `ChunkExecutor.prepare`, waiting for `commit`."""

    plan: Trajectory
    chunks: list[Trajectory]
    stamp: float
    dt: float
    horizon: int
    now: float
    generation: int


class ChunkExecutor:
    """Merges chunks into the executing plan and samples it; tells the node when it wants a new chunk.

    Not thread-safe on its own: ControlLoop serialises calls, except `prepare`, which only reads immutable
    snapshots (plans are never modified, only replaced) and so may run outside the loop's lock. `sample`
    writes into an internal buffer and returns it (valid until the next call).
    """

    def __init__(self, space: CommandSpace, config: ExecutorConfig, inference_hz: float) -> None:
        self.space = space
        self.config = config
        self.inference_period = 1.0 / inference_hz
        self.dim = space.arm_dim + (1 if space.gripper_name is not None else 0)
        self._linear_cols = (space.arm_dim,) if space.gripper_name is not None else ()
        self.latency = LatencyTracker(config.latency_window)
        self.chunk_rate = RateMeter(20)
        self._plan: Trajectory | None = None
        self._chunks: list[Trajectory] = []
        self._buffer = np.zeros(self.dim)
        self._in_flight_since: float | None = None
        self._last_request = -math.inf
        self._last_stamp = -math.inf
        self._horizon = config.default_horizon
        self._dt = 0.1
        self._generation = 0
        self.starved = True
        self.rejected = 0
        self.accepted = 0
        self.last_reject_reason = ""

    # ----------------------------------------------------------------------------------------- chunks in
    def merge(self, arm: np.ndarray, gripper: np.ndarray | None, stamp: float, dt: float, now: float) -> None:
        """Fold a command-space chunk (see CommandSpace.convert_chunk) into the plan; raises ChunkError if the
        chunk cannot be used (LateChunkError: older than the last one, or all its actions already past)."""
        try:
            prepared = self.prepare(arm, gripper, stamp, dt, now)
        except ChunkError as exc:
            self.mark_rejected(str(exc))
            raise
        if not self.commit(prepared):
            self.mark_rejected("superseded while merging")
            raise LateChunkError("superseded while merging")

    def prepare(
        self, arm: np.ndarray, gripper: np.ndarray | None, stamp: float, dt: float, now: float
    ) -> PreparedMerge:
        """Build the next plan without changing the executor: the expensive part of a merge, which the
        inference thread can run while the control timer keeps sampling the current plan."""
        if stamp <= self._last_stamp:
            raise LateChunkError(f"chunk stamp {stamp:.6f} is not newer than the last chunk's {self._last_stamp:.6f}")
        values = arm if gripper is None else np.column_stack([arm, gripper])
        if values.shape[1] != self.dim:
            raise ChunkError(f"chunk has {values.shape[1]} command dims, executor expects {self.dim}")
        horizon = len(values)
        if self.config.strategy == "synchronous":
            values = values[: self.config.execute_steps]
        chunk = Trajectory(stamp, dt, values, self.config.interpolation, self._linear_cols)
        if chunk.t_end < now:
            raise LateChunkError(f"chunk arrived {now - chunk.t_end:.3f}s after its last action was due")
        generation, old_plan, old_chunks = self._generation, self._plan, self._chunks
        # Grid from now to exactly the chunk's last action, spaced at most dt.
        count = max(1, math.ceil((chunk.t_end - now) / dt - 1e-9) + 1)
        spacing = (chunk.t_end - now) / (count - 1) if count > 1 else dt
        grid = now + spacing * np.arange(count)
        chunks: list[Trajectory] = []
        if self.config.strategy == "ensemble":
            live = [c for c in old_chunks if c.t_end >= now][-(_MAX_ENSEMBLE_CHUNKS - 1) :]
            chunks = [*live, chunk]
            target = self._ensemble(chunks, grid)
        else:
            target = chunk.evaluate(grid)
        if old_plan is not None:
            w = blend_weights(grid, now, dt, self.config.blend_steps)[:, None]
            target = w * old_plan.evaluate(grid) + (1.0 - w) * target
        plan = Trajectory(now, spacing, target, self.config.interpolation, self._linear_cols)
        return PreparedMerge(plan, chunks, stamp, dt, horizon, now, generation)

    def commit(self, prepared: PreparedMerge) -> bool:
        """Install a prepared plan (cheap). False if the executor changed since `prepare` (cleared, or another
        chunk was committed): the plan was blended from a state that no longer exists."""
        self._in_flight_since = None
        if prepared.generation != self._generation:
            return False
        self._plan = prepared.plan
        self._chunks = prepared.chunks
        self._last_stamp = prepared.stamp
        self._dt = prepared.dt
        self._horizon = prepared.horizon
        self._generation += 1
        self.accepted += 1
        self.chunk_rate.mark(prepared.now)
        return True

    def _ensemble(self, chunks: list[Trajectory], grid: np.ndarray) -> np.ndarray:
        covers = np.array([(grid >= c.t0 - 1e-9) & (grid <= c.t_end + 1e-9) for c in chunks])
        covers[-1] = True  # the newest chunk defines the plan's extent
        weights = ensemble_weights(covers, self.config.ensemble_decay)
        total = np.zeros((len(grid), self.dim))
        for c, w in zip(chunks, weights, strict=True):
            total += w[:, None] * c.evaluate(grid)
        return total / weights.sum(axis=0)[:, None]

    # ------------------------------------------------------------------------------------------ tick path
    def sample(self, now: float) -> np.ndarray | None:
        """Planned command at `now` (arm then gripper), or None when there is no plan for `now` (starved)."""
        plan = self._plan
        if plan is None or now > plan.t_end + 1e-9:
            self.starved = True
            return None
        self.starved = False
        return plan.sample_into(now, self._buffer)

    # ------------------------------------------------------------------------------------ inference timing
    def should_request_inference(self, now: float) -> bool:
        """synchronous: when the executed part is done; ensemble/rtc: at the inference rate. Never while a
        request is in flight, and at once when there is nothing left to execute."""
        if self._in_flight_since is not None:
            return False
        plan = self._plan
        if plan is None or now >= plan.t_end:
            return True
        if self.config.strategy == "synchronous":
            return False
        return now - self._last_request >= self.inference_period - 1e-9

    def mark_requested(self, now: float) -> None:
        self._in_flight_since = now
        self._last_request = now

    def mark_failed(self) -> None:
        """The inference in flight ended without a chunk (exception)."""
        self._in_flight_since = None

    def mark_rejected(self, reason: str) -> None:
        """The inference ended with a chunk that could not even be converted (counted like a merge reject)."""
        self._in_flight_since = None
        self.rejected += 1
        self.last_reject_reason = reason

    @property
    def in_flight_since(self) -> float | None:
        return self._in_flight_since

    def inference_overdue(self, now: float) -> bool:
        since = self._in_flight_since
        return since is not None and now - since > self.config.inference_timeout

    def expected_latency(self) -> float:
        """Inference time to compensate, from the configured quantile (0 before the first measurement)."""
        return self.latency.quantile(self.config.latency_quantile, 0.0)

    # ------------------------------------------------------------------------------------------ RTC hook
    def rtc_prefix(
        self,
        obs_stamp: float,
        expected_latency: float,
        horizon: int | None = None,
        dt: float | None = None,
        reference_state: np.ndarray | None = None,
    ) -> RtcPrefix | None:
        """The running plan on the next chunk's grid (obs_stamp + k*dt, in action-space units and the
        embodiment's action order) with weights 1 for the actions executed before it can arrive
        (expected_latency after obs_stamp), soft decay over blend_steps, then 0. None without a plan."""
        plan = self._plan
        if plan is None:
            return None
        horizon = horizon or self._horizon
        dt = dt or self._dt
        times = obs_stamp + dt * np.arange(horizon)
        actions = self.space.to_actions(plan.evaluate(times), dt, reference_state)
        weights = prefix_weights(horizon, frozen_steps(expected_latency, dt), self.config.blend_steps)
        return RtcPrefix(actions=actions, weights=weights)

    # ------------------------------------------------------------------------------------------- control
    def set_strategy(self, strategy: str) -> None:
        """Switch strategy while running: it decides how the *next* chunk is merged; every merge blends from the
        running plan, so the switch never moves the command discontinuously (and the safety filter follows)."""
        self.config = dataclasses.replace(self.config, strategy=as_strategy(strategy))

    def set_inference_rate(self, hz: float) -> None:
        """The re-plan cap of ensemble/rtc (how often a new chunk is requested); safe to change at any time."""
        if not (hz > 0 and math.isfinite(hz)):
            raise ValueError(f"inference rate must be positive, got {hz}")
        self.inference_period = 1.0 / hz

    def clear(self) -> None:
        """Forget the plan (pause, e-stop): the next chunk starts from whatever is commanded then."""
        if self._plan is not None or self._chunks:
            self._generation += 1
        self._plan = None
        self._chunks = []
        self.starved = True

    def reset(self) -> None:
        """Forget everything tied to the old timeline (a clock jump): the plan, the newest chunk's stamp, the
        request in flight (its chunk, if it still comes, answers an observation from that timeline)."""
        self.clear()
        self._generation += 1
        self._in_flight_since = None
        self._last_request = -math.inf
        self._last_stamp = -math.inf
        self.chunk_rate.reset()

    @property
    def plan(self) -> Trajectory | None:
        return self._plan
