"""The ExecuteInstruction decision without ROS: when a goal is over, with which outcome and why."""

from __future__ import annotations

import pytest

from vla_policy_node.control.instruction_goal import (
    InstructionGoal,
    MuxView,
    Outcome,
    PolicyView,
)

RUNNING = PolicyView(active=True, paused=False, instruction="reach the red block", fault="", stale_inputs=(),
                     estop=False)
POLICY_DRIVES = MuxView(active_source="policy", estop_latched=False)


def goal(limit: float = 0.0, start: float = 10.0) -> InstructionGoal:
    return InstructionGoal("reach the red block", limit, start)


def view(**changes) -> PolicyView:
    return PolicyView(**{**RUNNING.__dict__, **changes})


def test_runs_until_the_task_is_done_after_the_start():
    g = goal()
    g.on_task_done(True, 9.0)  # a success from before the goal does not count
    assert g.check(12.0, RUNNING, POLICY_DRIVES) is None
    g.on_task_done(False, 12.5)
    assert g.check(13.0, RUNNING, POLICY_DRIVES) is None
    g.on_task_done(True, 14.0)
    end = g.check(14.1, RUNNING, POLICY_DRIVES)
    assert end.outcome == Outcome.FINISHED and end.elapsed == pytest.approx(4.0) and "task_done" in end.reason
    assert end.holds  # the arm holds once the skill is done


def test_without_a_success_signal_only_the_time_limit_ends_it():
    g = goal(limit=2.0)
    assert g.check(11.9, RUNNING, None) is None
    end = g.check(12.0, RUNNING, None)
    assert end.outcome == Outcome.TIMED_OUT and "2 s" in end.reason
    assert goal(limit=0.0).check(1e6, RUNNING, None) is None  # 0: no limit


def test_teleop_preempts_and_the_estop_is_a_fault_at_once():
    end = goal().check(11.0, RUNNING, MuxView("teleop", False))
    assert end.outcome == Outcome.PREEMPTED_BY_TELEOP and end.holds
    end = goal().check(11.0, RUNNING, MuxView("hold", False, awaiting_resume=True))  # the mux never hands back
    assert end.outcome == Outcome.PREEMPTED_BY_TELEOP and "set_paused" in end.reason  # by itself
    assert goal().check(11.0, view(estop=True), POLICY_DRIVES).outcome == Outcome.FAULT
    end = goal().check(11.0, RUNNING, MuxView("hold", True))
    assert end.outcome == Outcome.FAULT and "e-stop" in end.reason


def test_a_fault_or_stale_input_must_last_the_grace_time():
    g = goal()
    stale = view(stale_inputs=("scene",))
    assert g.check(11.0, stale, POLICY_DRIVES) is None
    assert g.check(11.5, RUNNING, POLICY_DRIVES) is None  # it came back: the clock restarts
    assert g.check(12.0, stale, POLICY_DRIVES) is None
    assert g.check(12.9, stale, POLICY_DRIVES) is None
    end = g.check(13.0, stale, POLICY_DRIVES)
    assert end.outcome == Outcome.FAULT and "stale inputs: scene" in end.reason
    g = goal()
    g.check(11.0, view(fault="model exception: RuntimeError: boom"), POLICY_DRIVES)
    end = g.check(12.0, view(fault="model exception: RuntimeError: boom"), POLICY_DRIVES)
    assert end.outcome == Outcome.FAULT and "RuntimeError: boom" in end.reason


def test_the_time_limit_wins_over_trouble_whose_grace_ends_later():
    """A slow inference under load starts its grace inside the limit; a check that comes late sees both."""
    g = goal(limit=1.0)
    slow = view(fault="inference deadline missed (1.40 s > 1.0 s)")
    assert g.check(10.5, slow, POLICY_DRIVES) is None  # trouble from 10.5: a fault at 11.5, the limit at 11.0
    end = g.check(12.5, slow, POLICY_DRIVES)
    assert end.outcome == Outcome.TIMED_OUT and end.elapsed == pytest.approx(2.5)
    g = goal(limit=5.0)  # the fault matures first (11.5 < 15): a fault even when checked after the limit
    g.check(10.5, slow, POLICY_DRIVES)
    assert g.check(16.0, slow, POLICY_DRIVES).outcome == Outcome.FAULT


def test_cancel_pause_instruction_change_and_inactive_node():
    end = goal().cancel(12.0)
    assert end.outcome == Outcome.CANCELLED and end.holds and end.elapsed == pytest.approx(2.0)
    assert goal().check(11.0, view(paused=True), None).outcome == Outcome.CANCELLED
    end = goal().check(11.0, view(instruction="wave"), None)
    assert end.outcome == Outcome.CANCELLED and "'wave'" in end.reason
    end = goal().check(11.0, view(active=False), None)
    assert end.outcome == Outcome.FAULT and "not active" in end.reason


def test_a_new_goal_preempts_without_holding_and_the_first_end_sticks():
    g = goal()
    end = g.preempt(11.0, "reach the blue block")
    assert end.outcome == Outcome.CANCELLED and "preempted by a new goal" in end.reason and not end.holds
    assert g.check(20.0, view(estop=True), None) is end  # later events do not rewrite the outcome


def test_a_mux_status_from_before_the_goal_does_not_decide_it():
    """The status of a takeover that was over when the goal started (teleop, heard at 9.95 s; the goal starts at
    10 s) does not preempt it: the next status does, with its own reason. A latched e-stop counts at once."""
    g = goal()
    assert g.check(10.02, RUNNING, MuxView("teleop", False, received=9.95)) is None
    end = g.check(10.06, RUNNING, MuxView("hold", False, awaiting_resume=True, received=10.05))
    assert end.outcome == Outcome.PREEMPTED_BY_TELEOP and "set_paused" in end.reason
    assert goal().check(10.02, RUNNING, MuxView("teleop", False, received=10.01)).outcome == \
        Outcome.PREEMPTED_BY_TELEOP
    assert goal().check(10.02, RUNNING, MuxView("hold", True, received=9.95)).outcome == Outcome.FAULT


def test_order_when_several_hold_at_once():
    g = goal(limit=1.0)
    g.on_task_done(True, 11.0)
    assert g.check(11.0, view(estop=True), MuxView("teleop", False)).outcome == Outcome.FAULT
    g = goal(limit=1.0)
    g.on_task_done(True, 11.0)
    assert g.check(11.0, RUNNING, MuxView("teleop", False)).outcome == Outcome.PREEMPTED_BY_TELEOP
    g = goal(limit=1.0)
    g.on_task_done(True, 11.0)
    assert g.check(11.5, RUNNING, POLICY_DRIVES).outcome == Outcome.FINISHED  # done beats the time limit


def test_bad_time_limits_are_refused():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            InstructionGoal("x", bad, 0.0)
