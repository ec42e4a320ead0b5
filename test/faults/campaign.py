"""The fault campaign: which scenarios run on which node set, and lanes that run the sets concurrently.

A lane is a thread that brings up its node sets one after the other and runs each set's scenarios in order
on it (a scenario leaves its set healthy, so one start-up serves many scenarios). Lanes run at once, so their
start-ups and scenarios overlap: the whole campaign takes about as long as its longest lane. Each scenario's
outcome (None or the exception it raised) waits for the test that reports it (test_faults.py).

Sets: "sim" (the simulated arm, 100 Hz, forward_command gripper; its fake arm starts with the gripper reading
0.076 m past its range), "fr3" (Franka FR3, 250 Hz, 7 joints: the robot of issue 13's first finding),
"simtime" (the simulated arm on /clock published by the test, for clock jumps), and "startup" (no set).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from test.faults import scenarios as S
from test.faults import startup
from test.faults.nodeset import STARTUP_TIMEOUT, NodeSet, SetSpec
from test.system.processes import FRANKA_FR3, SIM_ARM, wait_for

GRIPPER_PAST_RANGE = json.dumps({"offsets": {"gripper": 0.076}})


@dataclass(frozen=True)
class Scenario:
    """solo: it measures what the machine gives a node (a control rate, rejections counted within a diagnostics
    period), so it runs while no other lane is in a step: another set's start-up or restart (four Python
    processes importing torch, a model's warm-up) would take that share, not the fault it injects."""

    name: str
    run: Callable[..., None]
    solo: bool = False


class LaneGate:
    """Lanes take turns with solo scenarios: every other step (a set's start-up, a scenario, a set's shutdown)
    holds the gate shared; a solo scenario waits for the other lanes' current steps to end, and no new step
    starts until it is done. A lane between steps leaves its node set running as before: steady load, which
    the solo scenario's own before-and-after comparison sees on both sides."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._steps = 0
        self._solo_waiting = 0
        self._solo_running = False

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._solo_running and not self._solo_waiting)
            self._steps += 1
        try:
            yield
        finally:
            with self._changed:
                self._steps -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def solo(self) -> Iterator[None]:
        with self._changed:
            self._solo_waiting += 1
            self._changed.wait_for(lambda: not self._solo_running and not self._steps)
            self._solo_waiting -= 1
            self._solo_running = True
        try:
            yield
        finally:
            with self._changed:
                self._solo_running = False
                self._changed.notify_all()


@dataclass(frozen=True)
class Plan:
    """A node set and its scenarios, in order; robot None: scenarios that start their own processes."""

    name: str
    robot: Path | None
    scenarios: tuple[Scenario, ...]
    sim_time: bool = False
    driver_fault: str = ""


def _limits_and_shutdown() -> tuple[Scenario, ...]:
    return (Scenario("whole_run_within_limits", S.whole_run_within_limits),)


def _startup() -> Scenario:
    return Scenario("startup_within_limits", S.startup_within_limits)


SIM = Plan("sim", SIM_ARM, (
    Scenario("startup_within_limits", S.startup_within_limits),
    Scenario("camera_dropout", S.camera_dropout),
    Scenario("joint_states_dropout", S.joint_states_dropout),
    Scenario("reading_past_limit", S.reading_past_limit),
    Scenario("reading_absurd", S.reading_absurd),
    Scenario("reading_nan", S.reading_nan),
    Scenario("reading_jump", S.reading_jump),
    Scenario("stamps_past", S.stamps_past),
    Scenario("stamps_future", S.stamps_future),
    Scenario("estop_and_reset", S.estop_and_reset),
    Scenario("estop_reset_refused_while_pressed", S.estop_reset_refused_while_pressed),
    Scenario("teleop_takeover_and_handback", S.teleop_takeover_and_handback),
    Scenario("model_exception", S.model_exception),
    Scenario("model_stall", S.model_stall),
    Scenario("model_nan", S.model_nan),
    Scenario("malformed_messages", S.malformed_messages, solo=True),
    Scenario("flood", S.flood, solo=True),
    Scenario("policy_sigstop", S.policy_sigstop),
    Scenario("instruction_special_tokens", S.instruction_special_tokens),
    Scenario("instruction_huge", S.instruction_huge),
    Scenario("future_stamp_single", S.future_stamp_single),  # last: today it blinds the policy for good
    *_limits_and_shutdown(),
), driver_fault=GRIPPER_PAST_RANGE)

FR3 = Plan("fr3", FRANKA_FR3, (
    _startup(),
    Scenario("joint_states_dropout", S.joint_states_dropout),
    Scenario("camera_dropout", S.camera_dropout),
    Scenario("reading_past_limit", S.reading_past_limit),
    Scenario("reading_jump", S.reading_jump),
    Scenario("model_stall", S.model_stall),
    *_limits_and_shutdown(),
))

SIMTIME = Plan("simtime", SIM_ARM, (
    _startup(),
    Scenario("clock_forward", S.clock_forward),
    Scenario("clock_back", S.clock_back),
    Scenario("inference_process_killed", S.inference_process_killed),
    Scenario("policy_sigkill", S.policy_sigkill),  # and a restarted policy node takes over
    *_limits_and_shutdown(),
), sim_time=True)

STARTUP = Plan("startup", None, (
    Scenario("bad_robot_yaml", startup.bad_robot_yaml),
    Scenario("corrupt_checkpoint", startup.corrupt_checkpoint),
))

# Two lanes of about equal length: never the two heavy sets at once (FR3 at 250 Hz with 224 px cameras is the
# heaviest: it follows the sim set); the light sim-time set and the start-up checks run beside them.
LANES: tuple[tuple[Plan, ...], ...] = ((SIM, FR3), (STARTUP, SIMTIME))


def scenario_keys() -> list[tuple[str, Scenario]]:
    """("set/scenario", Scenario) for every scenario, plus each set's clean shutdown, in lane order."""
    out = []
    for lane in LANES:
        for plan in lane:
            out += [(f"{plan.name}/{s.name}", s) for s in plan.scenarios]
            if plan.robot is not None:
                out.append((f"{plan.name}/clean_shutdown", Scenario("clean_shutdown", lambda ns: None)))
    return out


class Campaign:
    def __init__(self, workdir: Path, checkpoint: Path, selected: set[str]) -> None:
        self.workdir = workdir
        self.checkpoint = checkpoint
        self.selected = selected
        self.started = time.monotonic()
        self._outcomes: dict[str, BaseException | None] = {}
        self._done: dict[str, threading.Event] = {key: threading.Event() for key, _ in scenario_keys()}
        self._stop = threading.Event()
        self._gate = LaneGate()
        self.timings: dict[str, float] = {}
        self._threads = [threading.Thread(target=self._run_lane, args=(lane,), name=f"fault-lane-{i}", daemon=True)
                         for i, lane in enumerate(LANES)]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------------------------------------ results
    def outcome(self, key: str, timeout: float = 600.0) -> None:
        """Wait for scenario `key` and re-raise what it raised."""
        if not self._done[key].wait(timeout):
            raise AssertionError(f"{key} did not finish within {timeout:.0f} s")
        error = self._outcomes[key]
        if error is not None:
            raise error

    def _record(self, key: str, run: Callable[[], Any], ns: NodeSet | None = None, solo: bool = False) -> None:
        start = time.monotonic()
        try:
            with self._gate.solo() if solo else self._gate.step():
                start = time.monotonic()  # a solo scenario's wait for the other lanes is not its own time
                try:
                    if self._stop.is_set():
                        raise AssertionError("campaign stopped before this scenario ran")
                    run()
                    self._outcomes[key] = None
                except BaseException as error:  # reported by the scenario's test
                    self._outcomes[key] = error
                    if ns is not None and not self._stop.is_set():
                        ns.heal()
        finally:
            self.timings[key] = time.monotonic() - start
            self._done[key].set()

    def report(self) -> str:
        """One line per finished scenario: seconds it took, and the first line of what it raised."""
        lines = []
        for key, _ in scenario_keys():
            if key in self._outcomes:
                error = self._outcomes[key]
                first = (str(error).splitlines() or [""])[0][:160] if error is not None else ""
                result = "ok" if error is None else f"{type(error).__name__}: {first}"
                lines.append(f"  {key:50s} {self.timings.get(key, 0.0):5.1f}s  {result}")
        sets = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k.endswith("/startup"))
        return f"fault campaign: {time.monotonic() - self.started:.0f} s; start-ups: {sets}\n" + "\n".join(lines)

    def close(self, timeout: float = 60.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    # -------------------------------------------------------------------------------------------------- lanes
    def _run_lane(self, lane: tuple[Plan, ...]) -> None:
        for plan in lane:
            keys = [(f"{plan.name}/{s.name}", s) for s in plan.scenarios]
            wanted = [(key, s) for key, s in keys if key in self.selected]
            if plan.robot is None:
                for key, scenario in wanted:
                    directory = self.workdir / key.replace("/", "_")
                    directory.mkdir(parents=True)
                    self._record(key, lambda s=scenario, d=directory: s.run(d, self.checkpoint,
                                                                             _domain()))
                continue
            shutdown_key = f"{plan.name}/clean_shutdown"
            if not wanted and shutdown_key not in self.selected:
                continue
            self._run_set(plan, wanted, shutdown_key)

    def _run_set(self, plan: Plan, wanted: list[tuple[str, Scenario]], shutdown_key: str) -> None:
        directory = self.workdir / plan.name
        directory.mkdir(parents=True)
        spec = SetSpec(plan.name, plan.robot, self.checkpoint, plan.sim_time, plan.driver_fault)
        ns: NodeSet | None = None
        startup_error: BaseException | None = None
        t0 = time.monotonic()
        try:
            with self._gate.step():
                ns = NodeSet(spec, directory)
                self._bring_up(ns, plan)
        except BaseException as error:  # every scenario of the set reports it
            startup_error = error
        self.timings[f"{plan.name}/startup"] = time.monotonic() - t0
        for key, scenario in wanted:
            if startup_error is not None:
                self._record(key, lambda: _raise(AssertionError(f"{plan.name} did not start: {startup_error}")))
            else:
                self._record(key, lambda s=scenario: s.run(ns), ns, scenario.solo)
        codes: list[int] = []
        if ns is not None:
            with self._gate.step():
                codes = ns.close()
        logs = ns.logs() if ns is not None else ""
        self._record(shutdown_key, lambda: _check_codes(plan.name, codes, logs, startup_error))

    @staticmethod
    def _bring_up(ns: NodeSet, plan: Plan) -> None:
        """With a start-up sensor fault: wait for the policy node (the slowest to start) to command, then start the
        mux, let the fault act for a second after its first command, then heal it. Then wait for the policy to
        drive."""
        if plan.driver_fault:
            wait_for(lambda: ns.monitor.status.latest() is not None, STARTUP_TIMEOUT, "the policy node", ns)
            ns.start_mux()
            wait_for(lambda: ns.monitor.mux_status.latest() is not None, STARTUP_TIMEOUT, "the mux", ns)
            time.sleep(1.0)
            ns.sensor_fault()
        ns.wait_driving(STARTUP_TIMEOUT, f"{plan.name}: the policy to drive the arm")
        time.sleep(0.5)
        ns.startup_done = time.monotonic()


def _raise(error: BaseException) -> None:
    raise error


def _check_codes(name: str, codes: list[int], logs: str, startup_error: BaseException | None) -> None:
    if startup_error is not None:
        raise AssertionError(f"{name} did not start: {startup_error}")
    assert codes == [0, 0, 0], f"{name}: node exit codes {codes} (last started first)\n{logs}"


def _domain() -> int:
    import random

    return random.SystemRandom().randint(1, 230)
