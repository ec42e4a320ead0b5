"""The command mux behind a policy node that brakes to a hold, and what it does when the policy's stream stops.

Both run a safety filter with the robot's limits. Jerk is the softest of them and never delays a stop, so the
mux, tracking the policy's stream, brakes with it and stands where the policy stands (before 2026-12-06 the
mux's filter enforced jerk on the policy's stop and passed it by 0.6 mrad at 0.1 rad/s, 5 mrad at 0.3 rad/s and
39 mrad at 1 rad/s on sim_arm). Heard with messages late (one command twice, then a double step), the mux does
not take the double step for the stream's speed: it never passes the policy's stop either (it did, by up to
0.17 rad at 1 rad/s with 30% of the messages a tick late).
When the stream stops (the policy node stalls or dies), the mux goes to the last command it heard; if it holds on
its own first (its policy timeout, after a stall of its own), it stops where its filter stands, which it always
kept able to stop short of where the policy's stream could stop: inside the policy's path (the fault
campaign's `assert_hold` checks the same on the real nodes, with the arm's own braking allowed for)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from test.control.faults import mux_loop
from test.control.helpers import mid_state
from test.faults.monitor import beyond_path

DIRECTIONS = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
HOLD_TICK = 100  # the policy moves for 1 s at 100 Hz, then holds
TICKS = HOLD_TICK + 160


@dataclass
class Run:
    policy: np.ndarray  # [N, 6] the policy node's commands
    mux: np.ndarray  # [N, 6] the mux's commands
    mux_speed: np.ndarray  # [6] the mux's peak speed
    heard: np.ndarray  # the last policy command the mux heard


def run(emb, speed: float, cut: int = TICKS, stall: int = 0, late: float = 0.0, seed: int = 0) -> Run:
    """The policy's target moves at `speed` rad/s until HOLD_TICK, then the policy holds (brakes). The mux hears
    every policy command until tick `cut` (each one a tick late, i.e. the one before again, with probability
    `late`); for `stall` ticks after it the mux does not run at all."""
    rng = np.random.default_rng(seed)
    start = mid_state(emb)
    policy, mux = mux_loop(emb), mux_loop(emb)
    policy_out, mux_out, speeds = [], [], []
    target, reading, now, heard = start[:6].copy(), start.copy(), 100.0, start[:6]
    for k in range(TICKS):
        now = round(now + policy.period, 9)
        for loop in (policy, mux):
            loop.on_joint_state(now, emb.state_names, reading, now)
        if k < HOLD_TICK:
            target = target + speed * policy.period * DIRECTIONS
            policy.on_policy_command(target, now)
        elif k == HOLD_TICK:
            policy.pause()  # a hold in the policy node: its filter brakes from where it is
        command = policy.tick(now)
        policy_out.append(command.arm.copy())
        if k < cut and not (late and rng.random() < late):
            heard = command.arm.copy()
        if k < cut:
            mux.on_policy_command(heard, now)
        if cut < k < cut + stall:
            mux_out.append(mux_out[-1])
            continue
        out = mux.tick(now)
        mux_out.append(out.arm.copy())
        speeds.append(np.abs(mux.filter.last_velocity))
        reading = np.concatenate((out.arm, start[6:]))
    return Run(np.array(policy_out), np.array(mux_out), np.max(speeds, axis=0), heard)


@pytest.mark.parametrize("speed", [0.3, 1.0, 2.0])
def test_the_mux_brakes_with_a_braking_policy_and_stands_where_it_stands(sim_arm, speed):
    r = run(sim_arm, speed)
    stop = r.policy[-1]
    np.testing.assert_allclose(r.policy[-40:], np.tile(stop, (40, 1)), atol=1e-12)  # the policy stands
    np.testing.assert_allclose(r.mux, r.policy, atol=1e-9)  # the mux follows every command, the stop included


@pytest.mark.parametrize("speed", [0.3, 1.0, 2.0])
@pytest.mark.parametrize("late", [0.1, 0.3])
def test_late_messages_never_carry_the_mux_past_the_policy_s_stop(sim_arm, speed, late):
    for seed in range(10):
        r = run(sim_arm, speed, late=late, seed=seed)
        stop = r.policy[-1]
        overshoot = np.max(np.maximum((r.mux[HOLD_TICK:] - stop) * DIRECTIONS, 0.0))
        assert overshoot <= 1e-9, (seed, overshoot)
        np.testing.assert_allclose(r.mux[-1], stop, atol=1e-6)  # and it comes to rest on it


@pytest.mark.parametrize("stall", [0, 60])  # 60 ticks: longer than the mux's 0.5 s policy timeout
def test_a_silent_policy_stream_leaves_the_mux_on_what_it_heard_or_inside_the_policy_s_path(sim_arm, stall):
    for cut in range(HOLD_TICK - 20, HOLD_TICK + 60, 4):
        r = run(sim_arm, 1.0, cut=cut, stall=stall)
        rest = r.mux[-1]
        np.testing.assert_allclose(r.mux[-20:], np.tile(rest, (20, 1)), atol=1e-9)  # it came to rest
        assert np.all(beyond_path(rest, r.policy[0], r.policy) <= 1e-9), (cut, stall)  # never past the policy
        if stall == 0:
            # still running, it goes to the last command it heard (its timeout ends the last micro-radians)
            np.testing.assert_allclose(rest, r.heard, atol=1e-3)
