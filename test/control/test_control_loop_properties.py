"""Properties of the whole tick (executor -> mux -> safety filter) under arbitrary event sequences.

Chunks (smooth, wild, NaN, Inf, huge jumps, late, out of order), teleop messages, locks, e-stop and its reset,
pause/resume, deadman, model errors, and observation dropouts, interleaved with control ticks. Checked:
(a) no command ever leaves the position / velocity / acceleration limits, derived from consecutive commands and
    the nominal control period (float-rounding tolerance only);
(b) while the e-stop is latched every command is a hold;
(c) a fresh finite teleop message takes over on the next tick (one control period) unless a higher lock is on;
(d) the command right after a chunk arrives is within the limits of the one before (no jump at boundaries).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hevent
from hypothesis import strategies as st

from test.control.helpers import IMAGE
from vla_policy_node.control import ArmTarget, ControlConfig, ControlLoop, ExecutorConfig, LockSpec, MuxConfig
from vla_policy_node.spec import ActionChunk, load_embodiment

ROBOTS = Path(__file__).resolve().parents[2] / "config" / "robots"
EMBODIMENTS = {name: load_embodiment(ROBOTS / f"{name}.yaml") for name in ("sim_arm", "franka_fr3", "so101")}

seeds = st.integers(0, 2**32 - 1)
value_kinds = st.sampled_from(["smooth", "smooth", "wild", "jump", "nan", "inf", "huge"])
actions = st.one_of(
    st.tuples(st.just("chunk"), value_kinds, seeds, st.integers(1, 20), st.floats(0.0, 0.4), st.floats(-0.1, 0.5)),
    st.tuples(st.just("teleop"), value_kinds, seeds),
    st.tuples(st.just("teleop"), st.just("smooth"), seeds),
    st.tuples(st.just("estop"), st.booleans()),
    st.tuples(st.just("estop"), st.just(False)),  # released more often than pressed: exercises the latch
    st.tuples(st.just("safety_lock"), st.booleans()),
    st.tuples(st.just("reset_estop")),
    st.tuples(st.just("pause")),
    st.tuples(st.just("resume")),
    st.tuples(st.just("deadman"), st.booleans()),
    st.tuples(st.just("model_error")),
    st.tuples(st.just("observations"), st.booleans()),
)
# Every action is followed by some control ticks (the first of them right after it).
events = st.tuples(actions, st.sampled_from([20, 60, 1, 3, 150]))


def values(kind: str, seed: int, rows: int, emb, lo, hi) -> np.ndarray:
    """[rows, n_joints + gripper] command values of the given kind."""
    rng = np.random.default_rng(seed)
    n = len(emb.joints)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    phase = rng.uniform(0, 6.3, n)
    t = np.arange(rows)[:, None] * 0.1
    arm = mid + 0.6 * half * np.sin(0.8 * t + phase)
    if kind == "wild":
        arm = rng.uniform(lo - 1.0, hi + 1.0, (rows, n))
    elif kind == "jump":
        arm = arm + rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 3.0, n)
    elif kind == "huge":
        arm = rng.choice([-1e9, 1e9], (rows, n))
    g = emb.gripper
    grip = rng.uniform(g.lower - 0.1, g.upper + 0.1, (rows, 1))
    out = np.hstack([arm, grip])
    if kind in ("nan", "inf"):
        out[rng.integers(rows), rng.integers(n + 1)] = math.nan if kind == "nan" else -math.inf
    return out


def check_step(cmds, period, lo, hi, vmax, amax):
    """Limits over the last three commands (positions, velocity, acceleration)."""
    q = np.array([c for c in cmds[-3:]])
    assert np.all(q[-1] >= lo - 1e-9) and np.all(q[-1] <= hi + 1e-9), f"position {q[-1]} outside [{lo}, {hi}]"
    v = np.diff(q, axis=0) / period
    assert np.all(np.abs(v[-1]) <= vmax * (1 + 1e-9) + 1e-9), f"velocity {v[-1]} > {vmax}"
    if len(v) == 2:
        a = (v[1] - v[0]) / period
        assert np.all(np.abs(a) <= amax * (1 + 1e-7) + 1e-6), f"acceleration {a} > {amax}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    robot=st.sampled_from(sorted(EMBODIMENTS)),
    strategy=st.sampled_from(["rtc", "ensemble", "synchronous"]),
    require_deadman=st.booleans(),
    lagging_robot=st.booleans(),
    start_seed=seeds,
    script=st.lists(events, min_size=4, max_size=16),
)
def test_tick_properties(robot, strategy, require_deadman, lagging_robot, start_seed, script):
    emb = EMBODIMENTS[robot]
    config = ControlConfig(
        executor=ExecutorConfig(strategy=strategy, execute_steps=5, inference_timeout=0.5),
        mux=MuxConfig(
            require_deadman=require_deadman,
            locks=(LockSpec("estop", priority=255, latching=True), LockSpec("safety", priority=200)),
        ),
    )
    loop = ControlLoop(emb, config)
    period = loop.period
    margin = emb.safety.position_margin
    lo = np.array([j.lower for j in emb.joints]) + margin
    hi = np.array([j.upper for j in emb.joints]) - margin
    vmax = np.array([j.max_velocity for j in emb.joints])
    amax = np.array([j.max_acceleration for j in emb.joints])
    rng = np.random.default_rng(start_seed)
    start = rng.uniform(lo, hi)
    gripper = (emb.gripper.lower + emb.gripper.upper) / 2
    measured = np.append(start, gripper)
    now = 0.0
    assert loop.tick(now, measured) is not None
    cmds = [start, start, start]  # at rest before
    sources = []
    feed = True
    estop_value = estop_latched = safety_on = False
    deadman, deadman_time = False, -math.inf
    teleop_pending: bool | None = None  # finite-ness of a teleop message not yet followed by a tick

    def tick() -> None:
        nonlocal now, measured, teleop_pending
        now += period
        if feed:
            loop.sync.add_joint_state(now, emb.state_names, measured, now)
            for cam in emb.camera_names:
                loop.sync.add_image(cam, now, IMAGE, "rgb8", now)
        cmd = loop.tick(now, measured)
        assert cmd is not None and len(cmd.arm) == len(emb.joints)
        cmds.append(cmd.arm)
        sources.append(cmd.source)
        check_step(cmds, period, lo, hi, vmax, amax)  # (a), and (d) right after a chunk
        g = emb.gripper
        assert g.lower - 1e-12 <= cmd.gripper <= g.upper + 1e-12
        if estop_latched:
            assert cmd.hold and cmd.source == "hold"  # (b)
        if loop.mux.paused:
            assert cmd.source != "policy"
        if teleop_pending is not None:
            deadman_ok = not require_deadman or (deadman and now - deadman_time <= config.mux.deadman_timeout)
            if not estop_latched and not safety_on and deadman_ok:
                if teleop_pending:
                    assert cmd.source == "teleop", (cmd.source, loop.status(now).hold_reasons)  # (c)
                else:
                    assert cmd.hold  # a non-finite teleop command: held, with a fault
            teleop_pending = None
        if not lagging_robot:
            measured = np.append(cmd.arm, cmd.gripper)

    def act(event) -> None:
        nonlocal feed, estop_value, estop_latched, safety_on, deadman, deadman_time, teleop_pending
        kind = event[0]
        if kind == "chunk":
            _, vkind, seed, horizon, latency, age = event
            obs = loop.sync.poll(now) if loop.should_request_inference(now) else None
            stamp = now - age
            if obs is not None:
                prefix = loop.begin_inference(obs, now)
                if prefix is not None:  # RtcPrefix validates itself: finite, weights in [0, 1]
                    assert prefix.actions.shape[1] == emb.action_dim
                stamp = obs.stamp
            chunk = ActionChunk(stamp, emb.rates.action_dt, values(vkind, seed, horizon, emb, lo, hi),
                                emb.action_names)
            loop.on_chunk(chunk, latency, now)
        elif kind == "teleop":
            row = values(event[1], event[2], 1, emb, lo, hi)[0]
            loop.on_teleop(ArmTarget(row[:-1], float(row[-1])), now)
            teleop_pending = bool(np.isfinite(row).all())
        elif kind == "estop":
            loop.on_lock("estop", event[1], now)
            estop_value = event[1]
            estop_latched = estop_latched or event[1]
        elif kind == "safety_lock":
            loop.on_lock("safety", event[1], now)
            safety_on = event[1]
        elif kind == "reset_estop":
            ok, _ = loop.reset_estop(now)
            assert ok == (not estop_value)
            if ok:
                estop_latched = False
        elif kind == "pause":
            loop.pause()
        elif kind == "resume":
            loop.resume()
        elif kind == "deadman":
            loop.on_deadman(event[1], now)
            deadman, deadman_time = event[1], now
        elif kind == "model_error":
            loop.on_inference_error(RuntimeError("boom"), now)
        elif kind == "observations":
            feed = event[1]

    # Start from a running policy, so that what the script does interrupts real motion.
    preamble = [(("chunk", "smooth", start_seed, 20, 0.05, 0.0), 30)]
    for _ in range(3):
        tick()
    for event, ticks in preamble + script:
        act(event)
        for _ in range(ticks):
            tick()
    tick()
    hevent(f"ticks>{(len(cmds) // 100) * 100}")
    hevent(f"sources: {sorted(set(sources))}")
    status = loop.status(now)
    assert status.estop_latched == estop_latched
    assert len(status.stale_inputs) == len(status.input_ages)
