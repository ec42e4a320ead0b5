"""The policy node's ROS 2 action `~/execute_instruction` (vla_msgs/action/ExecuteInstruction): how behaviour
trees and task executives run the policy as a skill. rclpy only (the DDS transport has no actions; there the
services and parameters are the interface).

A goal sets the instruction (through the `instruction` parameter, so `ros2 param get` agrees) and resumes the
policy; dry run stays its own switch. Its feedback (10 Hz): elapsed time, the active source (the command mux's
from /vla/mux_status while that is fresh, else the policy node's), the last inference latency, the last chunk.
When it ends is control/instruction_goal.py's decision: finished (a true /vla/task_done after the start), timed
out, cancelled (the arm holds: the policy is paused), preempted by teleop, or fault, each with the reason.
A new goal preempts the running one (which ends cancelled, "preempted by a new goal", without a pause).
Goal states: FINISHED succeeds, a client's cancel is canceled, everything else aborts; the result says why.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vla_policy_node.control.instruction_goal import (
    PREEMPTED_BY_GOAL,
    GoalEnd,
    InstructionGoal,
    MuxView,
    Outcome,
    PolicyView,
)
from vla_policy_node.nodes.node_support import BOOL, POLICY_STATUS
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS

log = logging.getLogger(__name__)

ACTION_TYPE = "vla_msgs/action/ExecuteInstruction"
TASK_DONE_TOPIC = "/vla/task_done"
MUX_STATUS_TOPIC = "/vla/mux_status"
MUX_STATUS_FRESH = 1.0  # s: an older /vla/mux_status means no mux is running (its status comes at 10 Hz)


@dataclass(frozen=True)
class PolicyHooks:
    """What the action needs of the policy node (nodes/policy_node.py provides them)."""

    now: Callable[[], float]  # the node's clock (sim time in a replay)
    view: Callable[[], PolicyView]
    set_instruction: Callable[[str], None]
    pause: Callable[[], None]
    resume: Callable[[], None]
    active_source: Callable[[], str]
    latency: Callable[[], float]
    last_chunk: Callable[[], Any]  # the last vla_msgs/ActionChunk published, or None


class _Running:
    """One accepted goal: its decision object and a wake-up for cancel and preemption."""

    def __init__(self, handle: Any, goal: InstructionGoal) -> None:
        self.handle = handle
        self.goal = goal
        self.wake = threading.Event()


class InstructionActionServer:
    def __init__(self, transport: Transport, hooks: PolicyHooks, check_period: float = 0.1) -> None:
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from rclpy.callback_groups import ReentrantCallbackGroup

        from vla_msgs.action import ExecuteInstruction

        node = transport.node  # type: ignore[attr-defined]
        self._transport = transport
        self._types = ExecuteInstruction
        self._responses = (GoalResponse, CancelResponse)
        self.hooks = hooks
        self.check_period = float(check_period)
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._closing = False
        self._mux: tuple[float, MuxView] | None = None
        self._subscriptions = [
            transport.subscribe(TASK_DONE_TOPIC, BOOL, self._on_task_done, DEFAULT_QOS),
            transport.subscribe(MUX_STATUS_TOPIC, POLICY_STATUS, self._on_mux_status, DEFAULT_QOS),
        ]
        self._server = ActionServer(
            node, ExecuteInstruction, f"{node.get_name()}/execute_instruction",
            execute_callback=self._execute, goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            handle_accepted_callback=self._on_accepted, callback_group=ReentrantCallbackGroup())

    # -------------------------------------------------------------------------------------------- inputs
    def _on_task_done(self, msg: Any) -> None:
        with self._lock:
            running = self._running
        if running is not None:
            running.goal.on_task_done(bool(msg.data), self.hooks.now())
            running.wake.set()

    def _on_mux_status(self, msg: Any) -> None:
        self._mux = (time.monotonic(), MuxView(str(msg.active_source), bool(msg.estop_latched),
                                               bool(getattr(msg, "awaiting_resume", False)), self.hooks.now()))

    def mux_view(self) -> MuxView | None:
        mux = self._mux
        if mux is None or time.monotonic() - mux[0] > MUX_STATUS_FRESH:
            return None
        return mux[1]

    # ----------------------------------------------------------------------------------------- callbacks
    def _on_goal(self, request: Any) -> Any:
        accept, reject = self._responses[0].ACCEPT, self._responses[0].REJECT
        limit = float(request.time_limit)
        if not math.isfinite(limit) or limit < 0:
            log.warning("execute_instruction: goal rejected: time_limit must be >= 0 (0: none), got %s", limit)
            return reject
        if self._closing:
            return reject
        return accept

    def _on_cancel(self, handle: Any) -> Any:
        with self._lock:
            running = self._running
        if running is not None and running.handle is handle:
            running.wake.set()
        return self._responses[1].ACCEPT

    def _on_accepted(self, handle: Any) -> None:
        """A new goal: the running one (if any) ends preempted, the policy takes the new instruction."""
        request = handle.request
        now = self.hooks.now()
        goal = InstructionGoal(str(request.instruction), float(request.time_limit), now)
        with self._lock:
            previous, self._running = self._running, _Running(handle, goal)
        if previous is not None:
            previous.goal.preempt(now, goal.instruction)
            previous.wake.set()
        self.hooks.set_instruction(goal.instruction)
        self.hooks.resume()
        log.info("execute_instruction: %r (time limit %s)", goal.instruction,
                 f"{goal.time_limit:g} s" if goal.time_limit else "none")
        handle.execute()

    def _execute(self, handle: Any) -> Any:
        with self._lock:
            running = self._running if self._running is not None and self._running.handle is handle else None
        if running is None:  # preempted before it started
            return self._result(handle, GoalEnd(Outcome.CANCELLED, PREEMPTED_BY_GOAL, 0.0), canceled=False)
        goal = running.goal
        while True:
            now = self.hooks.now()
            if self._closing:
                end = goal.fault(now, "the policy node is shutting down")
                break
            if handle.is_cancel_requested:
                end = goal.cancel(now)
                break
            checked = goal.check(now, self.hooks.view(), self.mux_view())
            if checked is not None:
                end = checked
                break
            handle.publish_feedback(self._feedback(goal, now))
            running.wake.wait(self.check_period)
            running.wake.clear()
        with self._lock:
            if self._running is running:
                self._running = None
        if end.holds:
            self.hooks.pause()
        log.info("execute_instruction %r: %s after %.1f s: %s", goal.instruction, end.outcome.name, end.elapsed,
                 end.reason)
        return self._result(handle, end, canceled=handle.is_cancel_requested and end.outcome == Outcome.CANCELLED)

    def _feedback(self, goal: InstructionGoal, now: float) -> Any:
        feedback = self._types.Feedback()
        feedback.elapsed = goal.elapsed(now)
        mux = self.mux_view()
        feedback.active_source = mux.active_source if mux is not None else self.hooks.active_source()
        latency = self.hooks.latency()
        feedback.inference_latency = float(latency) if math.isfinite(latency) else 0.0
        chunk = self.hooks.last_chunk()
        if chunk is not None:
            feedback.last_chunk = chunk
        return feedback

    def _result(self, handle: Any, end: GoalEnd, canceled: bool) -> Any:
        result = self._types.Result()
        result.outcome, result.reason, result.elapsed = int(end.outcome), end.reason, float(end.elapsed)
        if canceled:
            handle.canceled()
        elif end.outcome == Outcome.FINISHED:
            handle.succeed()
        else:
            handle.abort()
        return result

    def close(self) -> None:
        """End a running goal (fault: shutting down) and destroy the server."""
        self._closing = True
        with self._lock:
            running = self._running
        if running is not None:
            running.wake.set()
            deadline = time.monotonic() + 2.0
            while self._running is running and time.monotonic() < deadline:
                time.sleep(0.01)
        for subscription in self._subscriptions:
            subscription.close()
        self._transport.destroy_when_stopped(self._server.destroy)  # type: ignore[attr-defined]
