"""ControlLoop: the one control tick of both nodes, and every input that decides what the arm does.

    tick(now) = source.sample(now) -> CommandMux.select (policy < teleop < locks, hand-over ramps)
                -> SafetyFilter (limits, anchored on the last command) -> Command

The policy *source* is what differs between the nodes (control/sources.py):
- policy node: `ControlLoop(embodiment, config)` -> a ChunkSource (observation sync, chunk executor, watchdog);
  its inference thread runs control/inference.py's InferenceStep against the loop's inference entry points;
- command mux: `ControlLoop(embodiment, config, source=CommandStream(space, policy_timeout))` -> the newest
  command a policy node sent, while fresh.

Both take teleop (absolute joints, JointJog, twists), locks (e-stop), deadman, pause/resume and the robot's joint
states, and hold while the joint states are stale (joint-space robots: the relative-target check needs them).

Distrust of inputs, the same in both nodes (issue 13):
- a joint reading that is not plausible (control/plausibility.py) is a sensor fault: every source holds, the
  status names the joint and why, nothing is anchored on it; control resumes (with a hand-over ramp) once
  readings are healthy again;
- time: stamps from the future are rejected (sync), and the node's clock going back by more than
  `clock_jump_tolerance` resets the sync and the plan and rebases every arrival time, with a message;
- after a teleop takeover the policy waits for an explicit resume (MuxConfig.handback);
- the instruction is checked (control/instruction.py) and a refused one holds the policy; a chunk whose
  inference overran the deadline (`executor.inference_timeout`) is dropped.
Every entry point takes the time explicitly and is serialised by one lock, so threads never see half an update.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from vla_policy_node.control.command import ArmTarget, ChunkError, Command, CommandSpace
from vla_policy_node.control.config import ControlConfig
from vla_policy_node.control.executor import ChunkExecutor
from vla_policy_node.control.inputs import InputStats
from vla_policy_node.control.instruction import InstructionRules, for_log
from vla_policy_node.control.joints import JointStateGate
from vla_policy_node.control.latency import RateMeter
from vla_policy_node.control.mux import AWAITING_RESUME, build_command_mux
from vla_policy_node.control.plausibility import Plausibility
from vla_policy_node.control.safety import CLAMP_NAMES, SafetyFilter
from vla_policy_node.control.sources import JOINT_STATES, ChunkSource, CommandStream, PolicySource
from vla_policy_node.control.status import ClampReport, ControlStatus, Diagnostic, Level
from vla_policy_node.control.sync import ObservationSync
from vla_policy_node.control.teleop import TeleopInput
from vla_policy_node.control.watchdog import Watchdog
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix

FAULT_DISPLAY_TIME = 2.0  # a one-off fault (a NaN command) stays in the status this long


class ControlLoop:
    def __init__(self, embodiment: Embodiment, config: ControlConfig | None = None,
                 source: PolicySource | None = None) -> None:
        self.embodiment = embodiment
        self.config = config = config or ControlConfig()
        self.space = space = CommandSpace.from_embodiment(embodiment)
        self.control_hz = config.control_hz or embodiment.rates.control_hz
        self.period = 1.0 / self.control_hz
        self.source: PolicySource = source if source is not None else ChunkSource(embodiment, space, config)
        self.filter = SafetyFilter(embodiment, space, self.period, config.safety)
        self.mux = build_command_mux(embodiment, space, config)
        self.teleop = TeleopInput(space, config.mux.teleop_timeout, self.period)
        self.tick_rate = RateMeter(200)
        self._lock = threading.RLock()
        self._chunks = self.source if isinstance(self.source, ChunkSource) else None
        self._stream = self.source if isinstance(self.source, CommandStream) else None
        if self._chunks is not None:  # the sync's gate: joint states also pair with images; judged by stamp
            self.joints = self._chunks.sync.joints
            self._input_stats = self._chunks.sync.stats
        else:  # twist_mux style: freshness from arrival times, so a driver's clock offset cannot hold the arm
            self.joints = JointStateGate(embodiment.state_names, JOINT_STATES, InputStats(), None)
            self._input_stats = {JOINT_STATES: self.joints.stats}
        self.plausibility = Plausibility(embodiment, config.plausibility)
        self.joints.plausibility = self.plausibility
        self.instruction_rules = InstructionRules(config.instruction.max_chars)
        self._instruction_fault = ""
        self._last_now = -math.inf
        self.clock_jumps = 0
        self._joint_max_age = embodiment.joint_states.max_age
        self._hold_on_stale_joints = space.kind == "joint_position"
        self._is_velocity = space.is_velocity
        self._n = space.arm_dim
        self._has_gripper = space.gripper_name is not None
        self._last_held = True
        self._last_source = "hold"
        self._hold_reason = "not started"
        self._fault = ""
        self._fault_time = -math.inf
        self._clamp_report = ClampReport()
        self.ticks = 0

    # ------------------------------------------------------------------------------------- source parts
    @property
    def sync(self) -> ObservationSync:
        return self._chunk_source().sync

    @property
    def executor(self) -> ChunkExecutor:
        return self._chunk_source().executor

    @property
    def watchdog(self) -> Watchdog:
        return self._chunk_source().watchdog

    def _chunk_source(self) -> ChunkSource:
        if self._chunks is None:
            raise TypeError("this ControlLoop follows a command stream; it has no observation sync or executor")
        return self._chunks

    def _command_stream(self) -> CommandStream:
        if self._stream is None:
            raise TypeError("this ControlLoop runs its own chunk executor; it takes no policy command stream")
        return self._stream

    # ------------------------------------------------------------------------------------------------ tick
    def tick(
        self, now: float, measured_state: np.ndarray | None = None, measured_ee_pose: np.ndarray | None = None
    ) -> Command | None:
        """One control period. None until the robot's state is known (then every tick returns a command).

        measured_state: joint positions (+ gripper) in `state_names` order; defaults to the newest joint state
        accepted, while fresh. measured_ee_pose: [x, y, z, roll, pitch, yaw] in the action frame, needed to
        start an ee_pose robot and to enforce the workspace of ee_delta (twist) commands.
        """
        with self._lock:
            self._observe_clock(now)
            self.ticks += 1
            self.tick_rate.mark(now)
            if measured_state is None:
                state = self._fresh_state(now)
            else:
                state = np.asarray(measured_state, dtype=np.float64)
                if self.plausibility.check(state, now):
                    state = None
            sensor_fault = self.plausibility.fault
            filt = self.filter
            if not filt.initialized:
                if sensor_fault:
                    self._hold_reason = f"sensor fault: {sensor_fault}: not starting"
                    return None
                if not self._initialize(state, measured_ee_pose):
                    return None
            mux = self.mux
            if mux.estop_latched:
                self.source.clear()  # after a reset the policy starts afresh
            planned = None if mux.paused or self._instruction_fault else self.source.sample(now)
            arm, gripper = planned if planned is not None else (None, None)
            if self.teleop.jogging(now):
                jog = self.teleop.jog_target(now, filt.last_arm)
                if jog is not None:
                    mux.on_teleop(jog, now)
            velocity = None if self._is_velocity else filt.last_velocity
            decision = mux.select(now, arm, gripper, filt.last_arm, filt.last_gripper, self._last_held, velocity)
            target, reason = decision.arm, decision.reason
            if sensor_fault:
                target, reason = None, f"sensor fault: {sensor_fault}: holding"
            elif target is not None and state is None and self._hold_on_stale_joints:
                target, reason = None, "joint states stale: holding"
            ee_position = None
            if measured_ee_pose is not None:
                ee_position = np.asarray(measured_ee_pose, dtype=np.float64)[:3]
            out = filt.apply(target, decision.gripper if target is not None else None, hold=target is None,
                             source=decision.source, measured_state=state, ee_position=ee_position)
            self._last_held = out.held
            self._last_source = "hold" if out.held else decision.source
            self._hold_reason = reason if target is None else ""
            if out.fault:
                self._fault, self._fault_time = out.fault, now
                self._hold_reason = out.fault
            return Command(now, self.space.kind, self.space.arm_names, out.arm, out.gripper, self._last_source,
                           out.held)

    def _fresh_state(self, now: float) -> np.ndarray | None:
        latest = self.joints.latest
        if latest is None:
            return None
        seen = latest.stamp if self._chunks is not None else latest.arrival
        return latest.state if now - seen <= self._joint_max_age else None

    def _observe_clock(self, now: float) -> None:
        """Every entry point's time: the node's clock going back by more than the tolerance is a clock jump.
        The usual case takes no lock (sensor callbacks must not queue behind the tick); a jump is handled
        under the loop's lock."""
        last = self._last_now
        if now >= last - self.config.clock_jump_tolerance:
            if now > last:
                self._last_now = now
            return
        with self._lock:
            last = self._last_now
            if now < last - self.config.clock_jump_tolerance:
                self._clock_jumped(now - last, now)
                self._last_now = now

    def _clock_jumped(self, shift: float, now: float) -> None:
        """Stamps of the old timeline are meaningless (sync and plan start afresh); arrival times move with the
        clock, so every timeout measures the time that really passed."""
        self.clock_jumps += 1
        self.source.clock_jumped(shift)
        self.mux.rebase(shift)
        self.teleop.rebase(shift)
        self.joints.rebase(shift)
        self.plausibility.rebase(shift)
        self.tick_rate.reset()
        self._fault = f"clock jumped back {-shift:.3f} s: inputs and plan reset"
        self._fault_time = now

    def _initialize(self, state: np.ndarray | None, ee_pose: np.ndarray | None) -> bool:
        gripper = None
        if self._has_gripper:
            if state is None:
                self._hold_reason = "waiting for joint states"
                return False
            gripper = float(state[len(self.embodiment.joints)])
        kind = self.space.kind
        if kind == "joint_position":
            if state is None:
                self._hold_reason = "waiting for joint states"
                return False
            self.filter.reset(np.asarray(state, dtype=np.float64)[: self._n], gripper)
        elif kind == "ee_pose":
            if ee_pose is None:
                self._hold_reason = "waiting for the end-effector pose (needs the robot description)"
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

    def reanchor(self, now: float, ee_pose: np.ndarray | None = None) -> tuple[bool, str]:
        """`reset_command` at the newest joint state if it is fresh; (ok, why not) for a service reply."""
        with self._lock:
            if self.plausibility.fault:
                return False, f"sensor fault: {self.plausibility.fault}: cannot start the command there"
            state = self._fresh_state(now)
            if state is None:
                return False, "no fresh joint state: cannot start the command where the robot is"
            try:
                self.reset_command(state, ee_pose)
            except ValueError as error:
                return False, str(error)
            return True, ""

    @property
    def measured_state(self) -> np.ndarray | None:
        """The newest accepted joint state (state_names order), however old."""
        latest = self.joints.latest
        return None if latest is None else latest.state

    # --------------------------------------------------------------------------------------- measurements
    def on_joint_state(self, stamp: float, names: Sequence[str], positions: Sequence[float] | np.ndarray,
                       now: float) -> bool:
        """A joint state message (any order, extra names ignored); False if it was rejected (counted)."""
        self._observe_clock(now)
        if self._chunks is not None:  # the sync's own lock serialises it
            return self._chunks.sync.add_joint_state(stamp, names, positions, now)
        with self._lock:
            return self.joints.accept(stamp, names, positions, now) is not None

    def on_image(self, camera: str, stamp: float, image: np.ndarray | None, encoding: str, now: float) -> bool:
        """A camera frame decoded to HxWx3 uint8 RGB from `encoding` (policy node); False if unusable."""
        sync = self._chunk_source().sync
        self._observe_clock(now)
        return sync.add_image(camera, stamp, image, encoding, now)

    # ------------------------------------------------------------------------------------------ inference
    def should_request_inference(self, now: float) -> bool:
        """True when the executor wants a new chunk and the policy may run (not paused, no e-stop)."""
        chunks = self._chunk_source()
        with self._lock:
            if self.mux.paused or self.mux.estop_latched or self._instruction_fault:
                return False
            return chunks.executor.should_request_inference(now)

    def begin_inference(self, obs: Observation, now: float) -> RtcPrefix | None:
        """Mark `obs` as sent to the model; returns the RTC prefix to condition on (rtc strategy, once a plan
        exists), else None."""
        chunks = self._chunk_source()
        with self._lock:
            return chunks.begin(obs, now)

    def rtc_prefix(
        self, obs_stamp: float, expected_latency: float, reference_state: np.ndarray | None = None
    ) -> RtcPrefix | None:
        """The RTC hook on its own: the running plan on the next chunk's grid with frozen/blend weights."""
        chunks = self._chunk_source()
        with self._lock:
            return chunks.executor.rtc_prefix(obs_stamp, expected_latency, reference_state=reference_state)

    def on_chunk(self, chunk: ActionChunk, latency: float, now: float) -> bool:
        """A chunk from the model, `latency` seconds of inference. False if it was dropped (see status).

        The new plan is built outside the lock (the control timer keeps ticking meanwhile) and swapped in at
        once; if the executor changed in between (pause, e-stop) the chunk is dropped."""
        chunks = self._chunk_source()
        with self._lock:
            chunks.executor.latency.add(latency)
            if self.mux.paused or self.mux.estop_latched:
                chunks.executor.mark_rejected("dropped: policy paused or e-stop latched")
                return False
            deadline = chunks.executor.config.inference_timeout
            if latency > deadline:  # planned from an observation that old: not worth executing
                self._fault = f"inference deadline missed ({latency:.2f} s > {deadline} s): chunk dropped"
                self._fault_time = now
                chunks.executor.mark_rejected(self._fault)
                return False
            ahead = chunk.stamp - now
            if ahead > chunks.sync.config.future_tolerance:  # answers an observation of another timeline
                chunks.executor.mark_rejected(f"dropped: chunk stamped {ahead:.3f} s ahead of the clock")
                return False
            try:
                arm, gripper = chunks.convert(chunk)
            except ChunkError as exc:
                return chunks.reject(exc)
        try:
            prepared = chunks.prepare(arm, gripper, chunk, now)
        except ChunkError as exc:
            with self._lock:
                return chunks.reject(exc)
        with self._lock:
            if self.mux.paused or self.mux.estop_latched or not chunks.commit(prepared):
                chunks.executor.mark_rejected("dropped: the executor changed while the chunk was merged")
                return False
            return True

    def on_inference_error(self, exc: BaseException, now: float) -> None:
        """The model raised: the policy holds until a good chunk arrives."""
        chunks = self._chunk_source()
        with self._lock:
            self._fault, self._fault_time = chunks.on_error(exc), now

    def set_special_tokens(self, tokens: Sequence[str]) -> None:
        """The model's special tokens, refused in instructions (the policy says which: `special_tokens`)."""
        with self._lock:
            self.instruction_rules.set_special_tokens(tokens)

    def set_instruction(self, text: str) -> tuple[bool, str]:
        """(True, message) if `text` is the instruction now; else (False, why) and the policy holds (no
        instruction) until a valid one arrives. Messages quote the text cut to a log line."""
        sync = self._chunk_source().sync
        with self._lock:
            problem = self.instruction_rules.check(text)
            if problem:
                self._instruction_fault = f"instruction refused ({problem}): the policy holds"
                sync.set_instruction("")
                self.source.clear()
                return False, self._instruction_fault
            self._instruction_fault = ""
            sync.set_instruction(text)
            return True, f"instruction set: {for_log(text, self.config.instruction.log_chars)}"

    # --------------------------------------------------------------------------------- command stream
    def on_policy_command(self, arm: np.ndarray, now: float) -> None:
        """A command from the policy node (command mux); ValueError if it does not fit the robot."""
        stream = self._command_stream()
        with self._lock:
            self._observe_clock(now)
            stream.on_command(arm, now)

    def on_policy_gripper(self, position: float) -> None:
        stream = self._command_stream()
        with self._lock:
            stream.on_gripper(position)

    # ------------------------------------------------------------------------------- teleop, locks, pause
    def on_teleop(self, target: ArmTarget, now: float) -> None:
        with self._lock:
            self._observe_clock(now)
            self.mux.on_teleop(self.teleop.absolute(target), now)

    def on_teleop_joints(self, names: Sequence[str], positions: np.ndarray, now: float) -> None:
        """Absolute joint targets (sensor_msgs/JointState); TeleopError if this robot cannot follow them."""
        with self._lock:
            self._observe_clock(now)
            self.mux.on_teleop(self.teleop.joints(names, positions), now)

    def on_teleop_twist(self, linear: np.ndarray, angular: np.ndarray, now: float) -> None:
        with self._lock:
            self._observe_clock(now)
            self.mux.on_teleop(self.teleop.twist(linear, angular), now)

    def on_teleop_jog(self, names: Sequence[str], displacements: np.ndarray | None,
                      velocities: np.ndarray | None, duration: float, now: float) -> None:
        """control_msgs/JointJog (see control/teleop.py)."""
        with self._lock:
            self._observe_clock(now)
            last = self.filter.last_arm if self.filter.initialized else None
            target = self.teleop.jog(names, displacements, velocities, duration, now, last)
            if target is not None:
                self.mux.on_teleop(target, now)

    def on_deadman(self, pressed: bool, now: float) -> None:
        with self._lock:
            self._observe_clock(now)
            self.mux.on_deadman(pressed, now)

    def on_lock(self, name: str, value: bool, now: float) -> None:
        with self._lock:
            self._observe_clock(now)
            self.mux.on_lock(name, value, now)

    def reset_estop(self, now: float) -> tuple[bool, str]:
        with self._lock:
            return self.mux.reset_estop(now)

    def pause(self) -> None:
        """Stop the policy (teleop still works); its plan is dropped so resuming re-plans from fresh data."""
        with self._lock:
            self.mux.set_paused(True)
            self.source.clear()

    def resume(self) -> str:
        """End a pause, and hand control back to the policy after a teleop takeover; what happened, for the
        service reply. A resume while teleop still drives cannot hand back: when teleop lets go the hand-back
        rule applies again (with handback "resume", the policy waits for another resume)."""
        with self._lock:
            self.mux.resume_policy()
            if self.mux.source == "teleop":
                return "pause cleared, but teleop drives the arm now: when it lets go the mux's hand-back rule " \
                       "applies again (with handback 'resume': resume after teleop has let go)"
            return "policy resumed"

    def on_resume_signal(self, pressed: bool, now: float) -> bool:
        """A resume pedal or button (std_msgs/Bool); True if this message resumed the policy."""
        with self._lock:
            self._observe_clock(now)
            return self.mux.on_resume_signal(pressed, now)

    # ------------------------------------------------------------------------------------ live settings
    def set_strategy(self, strategy: str) -> None:
        """Chunk execution strategy (synchronous / ensemble / rtc) from the next chunk on (ValueError if unknown)."""
        chunks = self._chunk_source()
        with self._lock:
            chunks.set_strategy(strategy)

    def set_inference_rate(self, hz: float) -> None:
        """The re-plan cap (0 or less: the robot's rates.inference_hz)."""
        chunks = self._chunk_source()
        with self._lock:
            chunks.executor.set_inference_rate(hz if hz > 0 else self.embodiment.rates.inference_hz)

    def set_velocity_scale(self, scale: float) -> None:
        """Tighten the speed limits to `scale` of the robot's (only ever tighter: SafetyFilter.set_velocity_scale)."""
        with self._lock:
            self.filter.set_velocity_scale(scale)

    # ------------------------------------------------------------------------------------------------ status
    def _input_ages(self, now: float) -> dict[str, float]:
        ages = self.source.input_ages(now)
        if JOINT_STATES not in ages:
            latest = self.joints.latest
            ages[JOINT_STATES] = max(now - (latest.arrival if latest is not None else -math.inf), 0.0)
        return ages

    def _stale_inputs(self, now: float, ages: dict[str, float]) -> tuple[str, ...]:
        stale = self.source.stale_inputs(now)
        if JOINT_STATES not in stale and ages[JOINT_STATES] > self._joint_max_age:
            stale.append(JOINT_STATES)
        return tuple(stale)

    def status(self, now: float) -> ControlStatus:
        with self._lock:
            src, chunks = self.source, self._chunks
            ages = self._input_ages(now)
            stale = self._stale_inputs(now, ages)
            reasons = [self._hold_reason] if self._hold_reason else []
            sensor = self.plausibility.fault
            if sensor and not any(sensor in r for r in reasons):
                reasons.append(f"sensor fault: {sensor}")
            if self._instruction_fault:
                reasons.append(self._instruction_fault)
            if self.mux.awaiting_resume and AWAITING_RESUME not in reasons:
                reasons.append(AWAITING_RESUME)
            if not self.mux.paused and not self.mux.awaiting_resume:
                reasons += src.hold_reasons(now)
            rejections = tuple(
                (f"{name}.{reason}", count)
                for name, stats in self._input_stats.items()
                for reason, count in sorted(stats.rejected.items())
            )
            ex = chunks.executor if chunks is not None else None
            hold_reasons = tuple(reasons) if self._last_held else ()
            return ControlStatus(
                stamp=now,
                active_source=self._last_source,
                paused=self.mux.paused,
                estop_latched=self.mux.estop_latched,
                starved=src.starved(now),
                fault=self._current_fault(now),
                instruction=chunks.sync.instruction if chunks is not None else "",
                control_rate=self.tick_rate.rate(now),
                inference_rate=ex.chunk_rate.rate(now) if ex is not None else 0.0,
                inference_latency_p50=ex.latency.p50 if ex is not None else math.nan,
                inference_latency_p99=ex.latency.p99 if ex is not None else math.nan,
                stale_inputs=stale,
                input_ages=tuple(ages[n] for n in stale),
                clamp_names=CLAMP_NAMES,
                clamp_counts=tuple(self.filter.counts[n] for n in CLAMP_NAMES),
                hold=self._last_held,
                hold_reasons=hold_reasons,
                active_locks=tuple(self.mux.active_locks(now)),
                all_input_ages=tuple(ages.items()),
                strategy=chunks.strategy if chunks is not None else "",
                inference_in_flight=ex is not None and ex.in_flight_since is not None,
                chunks_accepted=ex.accepted if ex is not None else 0,
                chunks_rejected=ex.rejected if ex is not None else 0,
                input_rejections=rejections,
                control_reason=self._control_reason(hold_reasons),
                awaiting_resume=self.mux.awaiting_resume,
                sensor_fault=sensor,
                joint_state_age=ages[JOINT_STATES],
            )

    def _control_reason(self, hold_reasons: tuple[str, ...]) -> str:
        """Who is in control and why, in one line."""
        source = self._last_source
        if source == "policy":
            return "policy: " + ("following the policy node's commands" if self._stream is not None
                                 else "executing the policy's plan")
        if source == "teleop":
            return "teleop: the operator's commands override the policy"
        return "hold: " + ("; ".join(hold_reasons) or "no command source")

    def _current_fault(self, now: float) -> str:
        fault = self.source.fault(now)
        if fault:
            return fault
        if now - self._fault_time <= FAULT_DISPLAY_TIME:
            return self._fault
        return ""

    def diagnostics(self, now: float) -> list[Diagnostic]:
        """Entries for /diagnostics; clamp warnings refer to clamps since the previous call."""
        st = self.status(now)
        rate_ok = st.control_rate >= 0.8 * self.control_hz or self.ticks < 10
        policy_commands = self._stream.received if self._stream is not None else st.chunks_accepted
        out = [Diagnostic(
            Level.OK if rate_ok else Level.WARN, "control loop",
            f"{st.control_rate:.0f} Hz, source {st.active_source}" + ("" if rate_ok else " (below nominal)"),
            (("control_rate", f"{st.control_rate:.1f}"), ("nominal_rate", f"{self.control_hz:.1f}"),
             ("active_source", st.active_source), ("hold", str(st.hold)), ("hold_reasons", "; ".join(st.hold_reasons)),
             ("policy_commands", str(policy_commands)), ("teleop_commands", str(self.teleop.received))))]
        out += self.source.diagnostics(now, dict(st.all_input_ages), st.stale_inputs, st.input_rejections)
        out.append(self._clamp_report.diagnostic(st.clamp_names, st.clamp_counts))
        if st.estop_latched:
            level, msg = Level.ERROR, "e-stop latched: reset required"
        elif st.active_locks or st.paused:
            parts = (["locked by " + ", ".join(st.active_locks)] if st.active_locks else []) + (
                ["policy paused"] if st.paused else [])
            level, msg = Level.WARN, "; ".join(parts)
        else:
            level, msg = Level.OK, f"source {st.active_source}"
        out.append(Diagnostic(level, "command mux", msg, (
            ("active_source", st.active_source), ("paused", str(st.paused)),
            ("estop_latched", str(st.estop_latched)), ("active_locks", ", ".join(st.active_locks)))))
        return out
