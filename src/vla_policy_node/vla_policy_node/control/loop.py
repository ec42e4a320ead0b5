"""ControlLoop: the one object the policy node drives.

Timer thread:     cmd = loop.tick(now, measured_state)            -> publish cmd (None: nothing known yet)
Inference thread: if loop.should_request_inference(now):
                      obs = loop.sync.poll(now)                     (None while inputs are stale / nothing new)
                      prefix = loop.begin_inference(obs, now)       (RtcPrefix for the sampler, or None)
                      try:    chunk = policy.infer(obs, prefix); loop.on_chunk(chunk, latency, now)
                      except Exception as exc: loop.on_inference_error(exc, now)
Subscriptions:    loop.sync.add_image(...), loop.sync.add_joint_state(...), loop.on_teleop(...), loop.on_lock(...),
                  loop.on_deadman(...); services: loop.reset_estop(now), loop.pause(), loop.resume(),
                  loop.set_instruction(text); status timer: loop.status(now), loop.diagnostics(now).

tick = executor.sample -> mux -> safety filter. All entry points take the time explicitly and are serialised
by one lock, so the threads never see half an update.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

from vla_policy_node.control.command import ArmTarget, ChunkError, Command, CommandSpace, LateChunkError
from vla_policy_node.control.config import ControlConfig
from vla_policy_node.control.executor import ChunkExecutor
from vla_policy_node.control.latency import RateMeter
from vla_policy_node.control.mux import CommandMux
from vla_policy_node.control.safety import CLAMP_NAMES, SafetyFilter
from vla_policy_node.control.status import ClampReport, ControlStatus, Diagnostic, Level
from vla_policy_node.control.sync import JOINT_STATES, ObservationSync
from vla_policy_node.control.watchdog import Watchdog
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix

FAULT_DISPLAY_TIME = 2.0  # a one-off fault (a NaN command) stays in the status this long


def build_command_mux(embodiment: Embodiment, space: CommandSpace, config: ControlConfig) -> CommandMux:
    """The CommandMux for `embodiment`, with hand-over ramps bounded by its joint (or Cartesian) limits.

    Shared by ControlLoop and the command mux node, so a hand-over ramps the same way in both."""
    if space.kind == "joint_position":
        rates = np.array([j.max_velocity for j in embodiment.joints])
    else:
        aspace = embodiment.action_space
        lin, ang = aspace.max_linear_speed, aspace.max_angular_speed
        if space.kind == "ee_twist":  # the offset is a velocity: ramp it over twist_ramp_time
            ramp = config.mux.twist_ramp_time
            lin, ang = lin / ramp, ang / ramp
        rates = np.array([lin] * 3 + [ang] * 3)
    accel = jerk = None
    if space.kind == "joint_position":
        accel = np.array([j.max_acceleration for j in embodiment.joints])
        if config.safety.enforce_jerk:
            jerk = np.array([j.max_jerk or np.inf for j in embodiment.joints])
    gripper_rate = embodiment.gripper.max_velocity if embodiment.gripper else None
    return CommandMux(config.mux, space, rates, gripper_rate, accel, jerk)


class ControlLoop:
    def __init__(self, embodiment: Embodiment, config: ControlConfig | None = None) -> None:
        self.embodiment = embodiment
        self.config = config = config or ControlConfig()
        self.space = CommandSpace.from_embodiment(embodiment)
        self.control_hz = config.control_hz or embodiment.rates.control_hz
        self.period = 1.0 / self.control_hz
        self.sync = ObservationSync(embodiment, config.sync)
        self.executor = ChunkExecutor(self.space, config.executor, embodiment.rates.inference_hz)
        self.filter = SafetyFilter(embodiment, self.space, self.period, config.safety)
        self.mux = build_command_mux(embodiment, self.space, config)
        self.watchdog = Watchdog(config.watchdog)
        self.tick_rate = RateMeter(200)
        self._lock = threading.RLock()
        self._n = self.space.arm_dim
        self._has_gripper = self.space.gripper_name is not None
        self._obs_states: OrderedDict[float, np.ndarray] = OrderedDict()
        self._last_held = True
        self._last_source = "hold"
        self._hold_reason = "not started"
        self._fault = ""
        self._fault_time = -math.inf
        self._clamp_report = ClampReport()
        self.ticks = 0

    # ------------------------------------------------------------------------------------------------ tick
    def tick(
        self, now: float, measured_state: np.ndarray | None = None, measured_ee_pose: np.ndarray | None = None
    ) -> Command | None:
        """One control period: executor.sample -> mux -> safety filter. None until the robot's state is known.

        measured_state: joint positions (+ gripper) in `state_names` order; defaults to the newest joint state
        the sync accepted. measured_ee_pose: [x, y, z, roll, pitch, yaw] in the action frame, needed to start
        an ee_pose robot and to enforce the workspace of ee_delta (twist) commands.
        """
        with self._lock:
            self.ticks += 1
            self.tick_rate.mark(now)
            if measured_state is None:
                measured_state = self._fresh_state(now)
            if not self.filter.initialized and not self._initialize(measured_state, measured_ee_pose):
                return None
            mux = self.mux
            if mux.estop_latched:
                self.executor.clear()  # after a reset the policy starts from a fresh observation
            arm = gripper = None
            if not mux.paused and not self.watchdog.policy_blocked(now, self.sync, self.executor):
                planned = self.executor.sample(now)
                if planned is not None:
                    arm = planned[: self._n]
                    gripper = float(planned[self._n]) if self._has_gripper else None
            filt = self.filter
            velocity = None if self.space.is_velocity else filt.last_velocity
            decision = mux.select(now, arm, gripper, filt.last_arm, filt.last_gripper, self._last_held, velocity)
            ee_position = None
            if measured_ee_pose is not None:
                ee_position = np.asarray(measured_ee_pose, dtype=np.float64)[:3]
            out = filt.apply(
                decision.arm,
                decision.gripper,
                hold=decision.arm is None,
                source=decision.source,
                measured_state=measured_state,
                ee_position=ee_position,
            )
            self._last_held = out.held
            source = "hold" if out.held else decision.source
            self._last_source = source
            self._hold_reason = decision.reason if decision.arm is None else ""
            if out.fault:
                self._fault, self._fault_time = out.fault, now
                self._hold_reason = out.fault
            return Command(now, self.space.kind, self.space.arm_names, out.arm, out.gripper, source, out.held)

    def _fresh_state(self, now: float) -> np.ndarray | None:
        latest = self.sync.latest_state()
        if latest is None or now - latest[0] > self.sync.max_age[JOINT_STATES]:
            return None
        return latest[1]

    def _initialize(self, state: np.ndarray | None, ee_pose: np.ndarray | None) -> bool:
        gripper = None
        if self._has_gripper:
            if state is None:
                return False
            gripper = float(np.asarray(state)[len(self.embodiment.joints)])
        kind = self.space.kind
        if kind == "joint_position":
            if state is None:
                return False
            self.filter.reset(np.asarray(state, dtype=np.float64)[: self._n], gripper)
        elif kind == "ee_pose":
            if ee_pose is None:
                return False
            self.filter.reset(np.asarray(ee_pose, dtype=np.float64)[:6], gripper)
        else:
            self.filter.reset(np.zeros(6), gripper)
        return True

    def reset_command(self, state: np.ndarray, ee_pose: np.ndarray | None = None) -> None:
        """Re-anchor the command to the robot (e.g. after the controller was switched); the robot is assumed
        at rest. The next source starts with a hand-over ramp from there."""
        with self._lock:
            gripper = None
            if self._has_gripper:
                gripper = float(np.asarray(state)[len(self.embodiment.joints)])
            if self.space.kind == "joint_position":
                self.filter.reset(np.asarray(state, dtype=np.float64)[: self._n], gripper)
            elif self.space.kind == "ee_pose":
                if ee_pose is None:
                    raise ValueError("an ee_pose robot needs its measured EE pose to re-anchor")
                self.filter.reset(np.asarray(ee_pose, dtype=np.float64)[:6], gripper)
            else:
                self.filter.reset(np.zeros(6), gripper)
            self._last_held = True

    # ------------------------------------------------------------------------------------------ inference
    def should_request_inference(self, now: float) -> bool:
        """True when the executor wants a new chunk and the policy may run (not paused, no e-stop)."""
        with self._lock:
            if self.mux.paused or self.mux.estop_latched:
                return False
            return self.executor.should_request_inference(now)

    def begin_inference(self, obs: Observation, now: float) -> RtcPrefix | None:
        """Mark `obs` as sent to the model; returns the RTC prefix to condition on (rtc strategy, once a plan
        exists), else None. Expected latency = the observation's age now + the measured inference quantile."""
        with self._lock:
            self.executor.mark_requested(now)
            self._obs_states[obs.stamp] = np.asarray(obs.state, dtype=np.float64)
            while len(self._obs_states) > 16:
                self._obs_states.popitem(last=False)
            if self.config.executor.strategy != "rtc":
                return None
            expected = max(now - obs.stamp, 0.0) + self.executor.expected_latency()
            return self.executor.rtc_prefix(obs.stamp, expected, reference_state=obs.state)

    def rtc_prefix(
        self, obs_stamp: float, expected_latency: float, reference_state: np.ndarray | None = None
    ) -> RtcPrefix | None:
        """The RTC hook on its own: the running plan on the next chunk's grid with frozen/blend weights."""
        with self._lock:
            return self.executor.rtc_prefix(obs_stamp, expected_latency, reference_state=reference_state)

    def on_chunk(self, chunk: ActionChunk, latency: float, now: float) -> bool:
        """A chunk from the model, `latency` seconds of inference. False if it was dropped (see status).

        The new plan is built outside the lock (the control timer keeps ticking meanwhile) and swapped in at
        once; if the executor changed in between (pause, e-stop) the chunk is dropped."""
        with self._lock:
            self.executor.latency.add(latency)
            if self.mux.paused or self.mux.estop_latched:
                self.executor.mark_rejected("dropped: policy paused or e-stop latched")
                return False
            try:
                arm, gripper = self.space.convert_chunk(chunk, self._obs_states.get(chunk.stamp))
            except ChunkError as exc:
                return self._reject_chunk(exc)
        try:
            prepared = self.executor.prepare(arm, gripper, chunk.stamp, chunk.dt, now)
        except ChunkError as exc:
            with self._lock:
                return self._reject_chunk(exc)
        with self._lock:
            if self.mux.paused or self.mux.estop_latched or not self.executor.commit(prepared):
                self.executor.mark_rejected("dropped: the executor changed while the chunk was merged")
                return False
            self.watchdog.on_good_chunk()
            return True

    def _reject_chunk(self, exc: ChunkError) -> bool:
        self.executor.mark_rejected(str(exc))
        if not isinstance(exc, LateChunkError):  # late is normal under load; malformed is a model fault
            self.watchdog.on_model_error(f"bad chunk: {exc}")
        return False

    def on_inference_error(self, exc: BaseException, now: float) -> None:
        """The model raised: the policy holds until a good chunk arrives."""
        with self._lock:
            self.executor.mark_failed()
            self.watchdog.on_model_error(f"model exception: {type(exc).__name__}: {exc}")
            self._fault, self._fault_time = self.watchdog.model_fault, now

    # ----------------------------------------------------------------------------------- mux and services
    def on_teleop(self, target: ArmTarget, now: float) -> None:
        with self._lock:
            self.mux.on_teleop(target, now)

    def on_deadman(self, pressed: bool, now: float) -> None:
        with self._lock:
            self.mux.on_deadman(pressed, now)

    def on_lock(self, name: str, value: bool, now: float) -> None:
        with self._lock:
            self.mux.on_lock(name, value, now)

    def reset_estop(self, now: float) -> tuple[bool, str]:
        with self._lock:
            return self.mux.reset_estop(now)

    def pause(self) -> None:
        """Stop the policy (teleop still works); its plan is dropped so resuming re-plans from fresh data."""
        with self._lock:
            self.mux.set_paused(True)
            self.executor.clear()

    def resume(self) -> None:
        with self._lock:
            self.mux.set_paused(False)

    def set_instruction(self, text: str) -> None:
        with self._lock:
            self.sync.set_instruction(text)

    # ------------------------------------------------------------------------------------------------ status
    def status(self, now: float) -> ControlStatus:
        with self._lock:
            ex, sync = self.executor, self.sync
            ages = sync.input_ages(now)
            stale = tuple(sync.stale_inputs(now))
            plan = ex.plan
            reasons = []
            if self._hold_reason:
                reasons.append(self._hold_reason)
            if not self.mux.paused:
                reasons += self.watchdog.reasons(now, sync, ex)
                if plan is None or now > plan.t_end:
                    reasons.append("executor starved: no action planned for now")
            rejections = tuple(
                (f"{name}.{reason}", count)
                for name, stats in sync.stats.items()
                for reason, count in sorted(stats.rejected.items())
            )
            return ControlStatus(
                stamp=now,
                active_source=self._last_source,
                paused=self.mux.paused,
                estop_latched=self.mux.estop_latched,
                starved=plan is None or now > plan.t_end,
                fault=self._current_fault(now),
                instruction=sync.instruction,
                control_rate=self.tick_rate.rate(now),
                inference_rate=ex.chunk_rate.rate(now),
                inference_latency_p50=ex.latency.p50,
                inference_latency_p99=ex.latency.p99,
                stale_inputs=stale,
                input_ages=tuple(ages[n] for n in stale),
                clamp_names=CLAMP_NAMES,
                clamp_counts=tuple(self.filter.counts[n] for n in CLAMP_NAMES),
                hold=self._last_held,
                hold_reasons=tuple(reasons) if self._last_held else (),
                active_locks=tuple(self.mux.active_locks(now)),
                all_input_ages=tuple(ages.items()),
                strategy=self.config.executor.strategy,
                inference_in_flight=ex.in_flight_since is not None,
                chunks_accepted=ex.accepted,
                chunks_rejected=ex.rejected,
                input_rejections=rejections,
            )

    def _current_fault(self, now: float) -> str:
        if self.watchdog.model_fault:
            return self.watchdog.model_fault
        if self.executor.inference_overdue(now):
            return "inference timeout"
        if now - self._fault_time <= FAULT_DISPLAY_TIME:
            return self._fault
        return ""

    def diagnostics(self, now: float) -> list[Diagnostic]:
        """Entries for /diagnostics; clamp warnings refer to clamps since the previous call."""
        st = self.status(now)
        out: list[Diagnostic] = []
        rate_ok = st.control_rate >= 0.8 * self.control_hz or self.ticks < 10
        out.append(
            Diagnostic(
                Level.OK if rate_ok else Level.WARN,
                "control loop",
                f"{st.control_rate:.0f} Hz, source {st.active_source}" + ("" if rate_ok else " (below nominal)"),
                (("control_rate", f"{st.control_rate:.1f}"), ("nominal_rate", f"{self.control_hz:.1f}"),
                 ("active_source", st.active_source), ("hold", str(st.hold)),
                 ("hold_reasons", "; ".join(st.hold_reasons))),
            )
        )
        ages = tuple((name, f"{age:.3f}") for name, age in st.all_input_ages)
        out.append(
            Diagnostic(
                Level.WARN if st.stale_inputs else Level.OK,
                "observation inputs",
                ("stale: " + ", ".join(st.stale_inputs)) if st.stale_inputs else "all inputs fresh",
                ages + tuple((k, str(v)) for k, v in st.input_rejections),
            )
        )
        if st.fault and (self.watchdog.model_fault or self.executor.inference_overdue(now)):
            level, msg = Level.ERROR, st.fault
        elif st.starved and not st.paused and st.strategy != "synchronous":
            level, msg = Level.WARN, "starved: no action planned for now"
        else:
            level, msg = Level.OK, f"{st.strategy}, {st.inference_rate:.1f} Hz"
        out.append(
            Diagnostic(
                level,
                "inference",
                msg,
                (("strategy", st.strategy), ("inference_rate", f"{st.inference_rate:.2f}"),
                 ("latency_p50", f"{st.inference_latency_p50:.4f}"), ("latency_p99", f"{st.inference_latency_p99:.4f}"),
                 ("chunks_accepted", str(st.chunks_accepted)), ("chunks_rejected", str(st.chunks_rejected)),
                 ("in_flight", str(st.inference_in_flight))),
            )
        )
        out.append(self._clamp_report.diagnostic(st.clamp_names, st.clamp_counts))
        if st.estop_latched:
            level, msg = Level.ERROR, "e-stop latched: reset required"
        elif st.active_locks or st.paused:
            parts = (["locked by " + ", ".join(st.active_locks)] if st.active_locks else []) + (
                ["policy paused"] if st.paused else []
            )
            level, msg = Level.WARN, "; ".join(parts)
        else:
            level, msg = Level.OK, f"source {st.active_source}"
        out.append(
            Diagnostic(
                level,
                "command mux",
                msg,
                (("active_source", st.active_source), ("paused", str(st.paused)),
                 ("estop_latched", str(st.estop_latched)), ("active_locks", ", ".join(st.active_locks))),
            )
        )
        return out
