"""Property (issue 13): while the policy and teleop hold still, no sequence of joint readings (plausible, out of
range, absurd, NaN, jumps, silence) or stamps (from the future, the past, clock jumps back and forward) makes
a command move or leave its limits, in the command mux's loop and in the policy node's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test.control.faults import mux_loop
from test.control.helpers import IMAGE, make_chunk
from vla_policy_node.control import ControlLoop
from vla_policy_node.spec import load_embodiment

ROBOTS = Path(__file__).resolve().parents[2] / "config" / "robots"
EMBODIMENTS = {name: load_embodiment(ROBOTS / f"{name}.yaml") for name in ("sim_arm", "franka_fr3")}

reading_kinds = st.sampled_from(["good", "good", "good", "past_limit", "absurd", "nan", "jump", "silent",
                                 "noise", "gripper_out"])
stamp_kinds = st.sampled_from(["now", "now", "now", "future", "slightly_future", "past", "far_past"])
clock_moves = st.sampled_from(["tick", "tick", "tick", "tick", "jump_back", "jump_forward", "small_back"])
events = st.tuples(reading_kinds, stamp_kinds, clock_moves, st.integers(0, 2**31 - 1), st.integers(1, 40))


def reading(kind: str, seed: int, start: np.ndarray, emb) -> np.ndarray | None:
    rng = np.random.default_rng(seed)
    out = start.copy()
    n = len(emb.joints)
    j = int(rng.integers(n))
    joint = emb.joints[j]
    if kind == "silent":
        return None
    if kind == "past_limit":
        out[j] = joint.upper + rng.uniform(0.06, 2.0) if rng.random() < 0.5 else joint.lower - rng.uniform(0.06, 2.0)
    elif kind == "absurd":
        out[j] = rng.choice([1e9, -1e9, 1e300])
    elif kind == "nan":
        out[int(rng.integers(n + 1))] = rng.choice([math.nan, math.inf, -math.inf])
    elif kind == "jump":
        out[j] = np.clip(out[j] + rng.choice([-1, 1]) * rng.uniform(0.3, 1.0), joint.lower, joint.upper)
    elif kind == "noise":
        out[:n] += rng.normal(0, 1e-4, n)
    elif kind == "gripper_out":
        out[n] = emb.gripper.upper + rng.uniform(0.0, 0.2)
    return out


def stamp_of(kind: str, now: float, seed: int) -> float:
    rng = np.random.default_rng(seed + 1)
    return {"now": now, "future": now + rng.uniform(0.2, 5000.0), "slightly_future": now + rng.uniform(0.0, 0.09),
            "past": now - rng.uniform(0.01, 0.3), "far_past": now - rng.uniform(1.0, 5000.0)}[kind]


def advance(move: str, now: float, period: float) -> float:
    if move == "jump_back":
        return now - 50.0
    if move == "jump_forward":
        return now + 30.0
    if move == "small_back":
        return now - 0.3 * period
    return now + period


def check(cmd, start, emb, lo, hi):
    if cmd is None:
        return
    assert np.max(np.abs(cmd.arm - start[: len(emb.joints)])) < 1e-9, f"moved: {cmd.arm - start[:-1]}"
    assert np.all(cmd.arm >= lo - 1e-9) and np.all(cmd.arm <= hi + 1e-9)
    assert emb.gripper.lower <= cmd.gripper <= emb.gripper.upper


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(robot=st.sampled_from(sorted(EMBODIMENTS)), start_seed=st.integers(0, 2**31 - 1),
       script=st.lists(events, min_size=1, max_size=12), policy_node=st.booleans())
def test_holding_sources_never_move_whatever_the_readings_and_stamps(robot, start_seed, script, policy_node):
    emb = EMBODIMENTS[robot]
    margin = emb.safety.position_margin
    lo = np.array([j.lower for j in emb.joints]) + margin
    hi = np.array([j.upper for j in emb.joints]) - margin
    rng = np.random.default_rng(start_seed)
    start = np.append(rng.uniform(lo, hi), rng.uniform(emb.gripper.lower, emb.gripper.upper))
    loop = ControlLoop(emb) if policy_node else mux_loop(emb)
    period = loop.period
    now = 1000.0

    def feed(values, stamp):
        loop.on_joint_state(stamp, emb.state_names, values, now)
        if policy_node:
            for cam in emb.camera_names:
                loop.on_image(cam, stamp, IMAGE, "rgb8", now)

    def hold_still():
        """The policy asks to stay where the arm started."""
        if not policy_node:
            loop.on_policy_command(start[:-1], now)
            return
        if loop.should_request_inference(now):
            obs = loop.sync.poll(now)
            if obs is not None:
                loop.begin_inference(obs, now)
                loop.on_chunk(make_chunk(emb, obs.stamp, np.tile(start[:-1], (20, 1)), start[-1]), 0.01, now)

    for _ in range(5):
        now += period
        feed(start, now)
        hold_still()
        check(loop.tick(now), start, emb, lo, hi)
    for kind, stamp_kind, move, seed, ticks in script:
        for k in range(ticks):
            now = advance(move if k == 0 else "tick", now, period)
            values = reading(kind, seed + k, start, emb)
            if values is not None:
                feed(values, stamp_of(stamp_kind, now, seed + k))
            hold_still()
            check(loop.tick(now), start, emb, lo, hi)
    status = loop.status(now)
    assert min(age for _, age in status.all_input_ages) >= 0.0
