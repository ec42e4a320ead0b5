"""When one "execute this instruction" goal is over, and why: the decision behind vla_msgs/action/ExecuteInstruction.

Plain data in, an outcome out; the node (nodes/instruction_action.py) feeds it and does what it says.
A goal ends, checked in this order each time:
- FAULT at once when the e-stop is engaged (the policy node's lock, or latched in the command mux); FAULT when
  the policy node reports a fault (model exception, bad chunk, inference timeout, non-finite command) or stale
  inputs (cameras or joint states gone quiet) without a break for `fault_grace` seconds: the arm is held and the
  skill cannot go on. A blip shorter than that (one late camera frame) does not end the goal, nor does trouble
  whose grace runs past the time limit: the limit came first, so it is TIMED_OUT (checks may come late under load);
- PREEMPTED_BY_TELEOP when the command mux's active source is teleop (a person took over), or the mux still holds
  the policy after a takeover until someone resumes it (`awaiting_resume`: the mux never hands back by itself),
  in a mux status received after the goal started (it comes at 10 Hz: one from before may already be stale, and
  the reason it gives would be the old one);
- CANCELLED when the policy was paused or its instruction changed by another client while the goal ran;
- FINISHED when the success signal (`/vla/task_done`: std_msgs/Bool from a success detector, or the simulator's
  task check) reads true in a message received after the goal started. Nothing else counts as success: a goal
  without a success signal can only end by its time limit, never "finished" by guesswork;
- TIMED_OUT when `time_limit` (> 0) has passed.
A client's cancel is CANCELLED (the arm holds), and a new goal ends the running one as CANCELLED with the reason
"preempted by a new goal". Every outcome except that preemption pauses the policy (the arm holds): a skill that
ended must not keep moving the arm under its old instruction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

DEFAULT_FAULT_GRACE = 1.0  # s; a fault or stale input must last this long to end a goal (an e-stop: at once)


class Outcome(IntEnum):
    """vla_msgs/action/ExecuteInstruction Result.outcome."""

    FINISHED = 0
    TIMED_OUT = 1
    CANCELLED = 2
    PREEMPTED_BY_TELEOP = 3
    FAULT = 4


@dataclass(frozen=True)
class GoalEnd:
    outcome: Outcome
    reason: str
    elapsed: float

    @property
    def holds(self) -> bool:
        """Whether the policy is paused (the arm holds) after this end: all but a preemption by a new goal."""
        return not self.reason.startswith(PREEMPTED_BY_GOAL)


PREEMPTED_BY_GOAL = "preempted by a new goal"


@dataclass(frozen=True)
class PolicyView:
    """What the goal looks at on the policy node (its ControlStatus, in short)."""

    active: bool  # lifecycle active (configured and running)
    paused: bool
    instruction: str
    fault: str
    stale_inputs: tuple[str, ...]
    estop: bool  # the policy node's e-stop lock engaged


@dataclass(frozen=True)
class MuxView:
    """The command mux's /vla/mux_status, when one arrived recently."""

    active_source: str
    estop_latched: bool
    awaiting_resume: bool = False  # teleop had the arm and let go: the mux holds the policy until resumed
    received: float = math.inf  # when it arrived (the goal's clock); inf: counts for any goal


class InstructionGoal:
    """One goal from its start to its end; `check` says when it is over (see the module docstring)."""

    def __init__(self, instruction: str, time_limit: float, start: float,
                 fault_grace: float = DEFAULT_FAULT_GRACE) -> None:
        if not math.isfinite(time_limit) or time_limit < 0:
            raise ValueError(f"time_limit must be >= 0 (0: none), got {time_limit}")
        self.instruction = instruction
        self.time_limit = float(time_limit)
        self.start = float(start)
        self.fault_grace = float(fault_grace)
        self.done_at: float | None = None
        self._trouble_since: float | None = None
        self.end: GoalEnd | None = None

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.start)

    def on_task_done(self, done: bool, received: float) -> None:
        """A /vla/task_done message (its arrival time): a true one after the start finishes the goal."""
        if done and received >= self.start and self.done_at is None:
            self.done_at = received

    def cancel(self, now: float, reason: str = "cancelled by the client") -> GoalEnd:
        return self._finish(Outcome.CANCELLED, reason, now)

    def fault(self, now: float, reason: str) -> GoalEnd:
        """End it as a fault decided outside the checks (the node shutting down)."""
        return self._finish(Outcome.FAULT, reason, now)

    def preempt(self, now: float, new_instruction: str) -> GoalEnd:
        return self._finish(Outcome.CANCELLED, f"{PREEMPTED_BY_GOAL} ({new_instruction!r})", now)

    def check(self, now: float, policy: PolicyView, mux: MuxView | None) -> GoalEnd | None:
        """The goal's end if it is over now, else None (then keep checking)."""
        if self.end is not None:
            return self.end
        if not policy.active:
            return self._finish(Outcome.FAULT, "the policy node is not active (lifecycle: configure and activate "
                                "it first)", now)
        if policy.estop or (mux is not None and mux.estop_latched):
            return self._finish(Outcome.FAULT, "e-stop engaged: the arm holds", now)
        trouble = policy.fault or (("stale inputs: " + ", ".join(policy.stale_inputs)) if policy.stale_inputs
                                   else "")
        if trouble:
            if self._trouble_since is None:
                self._trouble_since = now
            fault_at = self._trouble_since + self.fault_grace
            if now >= fault_at and not self._timed_out_by(fault_at):
                return self._finish(Outcome.FAULT, f"{trouble} (for {now - self._trouble_since:.1f} s)", now)
        else:
            self._trouble_since = None
        if mux is not None and mux.received < self.start:
            mux = None  # heard before the goal: wait for the next status (its e-stop latch counted above)
        if mux is not None and mux.active_source == "teleop":
            return self._finish(Outcome.PREEMPTED_BY_TELEOP, "teleop took over the arm (command mux)", now)
        if mux is not None and mux.awaiting_resume:
            return self._finish(Outcome.PREEMPTED_BY_TELEOP, "teleop had the arm: the command mux holds the policy "
                                "until it is resumed (/vla_command_mux/set_paused with paused: false)", now)
        if policy.paused:
            return self._finish(Outcome.CANCELLED, "the policy was paused (~/set_paused) while the goal ran", now)
        if policy.instruction != self.instruction:
            return self._finish(Outcome.CANCELLED, f"the instruction was changed to {policy.instruction!r} by "
                                "another client", now)
        if self.done_at is not None:
            return self._finish(Outcome.FINISHED, "the task is done (/vla/task_done)", self.done_at)
        if self.time_limit > 0 and self.elapsed(now) >= self.time_limit:
            return self._finish(Outcome.TIMED_OUT, f"time limit of {self.time_limit:g} s reached without "
                                "/vla/task_done", now)
        return None

    def _timed_out_by(self, moment: float) -> bool:
        """The time limit ran out at or before `moment`: then it, not a later-maturing fault, ends the goal."""
        return self.time_limit > 0 and self.start + self.time_limit <= moment

    def _finish(self, outcome: Outcome, reason: str, now: float) -> GoalEnd:
        if self.end is None:
            self.end = GoalEnd(outcome, reason, self.elapsed(now))
        return self.end
