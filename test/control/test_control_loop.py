"""ControlLoop end to end: executor -> mux -> safety filter, watchdog holds, status and diagnostics."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from test.control.helpers import cartesian_robot, feed_observation, make_chunk, mid_state, small_robot
from vla_policy_node.control import ArmTarget, ControlConfig, ControlLoop, ExecutorConfig, Level, MuxConfig
from vla_policy_node.control.config import WatchdogConfig
from vla_policy_node.spec import ActionChunk, Observation, RtcPrefix


class Harness:
    """Drives a loop in simulated time: fresh observations every tick, commands recorded."""

    def __init__(self, emb, config: ControlConfig | None = None, state=None):
        self.loop = ControlLoop(emb, config)
        self.emb = emb
        self.state = mid_state(emb) if state is None else np.asarray(state, float)
        self.now = 0.0
        self.commands = []
        self.feed = True

    def step(self, n: int = 1):
        for _ in range(n):
            self.now = round(self.now + self.loop.period, 9)
            if self.feed:
                feed_observation(self.loop, self.now, self.state)
            cmd = self.loop.tick(self.now)
            self.commands.append(cmd)
        return self.commands[-1]

    def chunk(self, arm, gripper=0.02, stamp=None, latency=0.0):
        stamp = self.now if stamp is None else stamp
        return self.loop.on_chunk(make_chunk(self.emb, stamp, arm, gripper), latency, self.now)


def test_nothing_is_sent_before_the_robot_state_is_known(sim_arm):
    loop = ControlLoop(sim_arm)
    assert loop.tick(0.0) is None
    cmd = loop.tick(0.01, measured_state=mid_state(sim_arm))
    assert cmd.hold and cmd.source == "hold"
    np.testing.assert_allclose(cmd.arm, mid_state(sim_arm)[:6])
    assert cmd.names == sim_arm.joint_names and cmd.kind == "joint_position"
    np.testing.assert_allclose(cmd.values, mid_state(sim_arm))


def test_chunk_drives_the_arm_and_is_tracked(sim_arm):
    h = Harness(sim_arm)
    h.step(3)
    target = mid_state(sim_arm)[:6] + 0.05
    assert h.chunk(target, stamp=h.now - 0.02, latency=0.02)
    cmd = h.step(1)
    assert cmd.source == "policy" and not cmd.hold
    h.step(60)
    np.testing.assert_allclose(h.commands[-1].arm, target, atol=1e-9)
    assert h.commands[-1].gripper == pytest.approx(0.02)
    st = h.loop.status(h.now)
    assert st.active_source == "policy" and not st.hold and st.chunks_accepted == 1


def test_non_finite_chunk_is_rejected_with_a_fault_and_the_policy_holds(sim_arm):
    h = Harness(sim_arm)
    h.step(2)
    assert h.chunk(mid_state(sim_arm)[:6])
    h.step(2)
    bad = np.tile(mid_state(sim_arm)[:6], (8, 1))
    bad[3, 2] = np.nan
    assert not h.chunk(bad)
    cmd = h.step(1)
    assert cmd.hold and cmd.source == "hold"
    st = h.loop.status(h.now)
    assert "NaN" in st.fault and st.hold and any("NaN" in r for r in st.hold_reasons)
    assert st.chunks_rejected == 1
    assert h.chunk(mid_state(sim_arm)[:6])  # a good chunk clears the fault
    assert h.step(1).source == "policy"
    assert h.loop.status(h.now).fault == ""


def test_chunk_with_wrong_names_is_a_fault(sim_arm):
    h = Harness(sim_arm)
    h.step(1)
    chunk = ActionChunk(stamp=h.now, dt=0.1, actions=np.zeros((4, 2)), names=("a", "b"))
    assert not h.loop.on_chunk(chunk, 0.01, h.now)
    assert "lacks action dims" in h.loop.status(h.now).fault


def test_model_exception_holds_until_a_good_chunk(sim_arm):
    h = Harness(sim_arm)
    h.step(2)
    h.chunk(mid_state(sim_arm)[:6])
    h.step(2)
    h.loop.on_inference_error(RuntimeError("CUDA out of memory"), h.now)
    cmd = h.step(1)
    assert cmd.hold
    st = h.loop.status(h.now)
    assert st.fault == "model exception: RuntimeError: CUDA out of memory"
    assert h.loop.should_request_inference(h.now)  # it may try again
    h.chunk(mid_state(sim_arm)[:6])
    assert h.step(1).source == "policy"


def test_inference_timeout_holds(sim_arm):
    cfg = ControlConfig(executor=ExecutorConfig(inference_timeout=0.2, default_horizon=50))
    h = Harness(sim_arm, cfg)
    h.step(1)
    h.loop.on_chunk(make_chunk(sim_arm, h.now, np.tile(mid_state(sim_arm)[:6], (50, 1))), 0.01, h.now)
    obs = h.loop.sync.poll(h.now + 0.001)
    h.loop.begin_inference(obs, h.now)
    h.step(20)
    assert h.commands[-1].source == "policy"
    cmd = h.step(2)  # 0.22 s in flight
    assert cmd.hold
    assert h.loop.status(h.now).fault == "inference timeout"
    assert not h.loop.should_request_inference(h.now)  # the stuck request is still in flight


def test_stale_observation_holds_and_recovers(sim_arm):
    h = Harness(sim_arm)
    h.step(2)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (30, 1)))
    assert h.step(1).source == "policy"
    h.feed = False
    h.step(10)  # 0.1 s: the joint state limit of sim_arm
    assert h.commands[-1].source == "policy"
    cmd = h.step(1)
    assert cmd.hold
    st = h.loop.status(h.now)
    assert "joint_states" in st.stale_inputs
    ages = dict(zip(st.stale_inputs, st.input_ages, strict=True))
    assert ages["joint_states"] == pytest.approx(0.11)
    assert any(r.startswith("no fresh observation") for r in st.hold_reasons)
    h.feed = True
    assert h.step(1).source == "policy"


def test_teleop_takes_over_and_hands_back(sim_arm):
    h = Harness(sim_arm, ControlConfig(mux=MuxConfig(handback="auto")))  # twist_mux's automatic return
    h.step(2)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)))
    h.step(2)
    h.loop.on_teleop(ArmTarget(mid_state(sim_arm)[:6] + 0.1, 0.03), h.now)
    assert h.step(1).source == "teleop"
    for _ in range(40):
        h.loop.on_teleop(ArmTarget(mid_state(sim_arm)[:6] + 0.1, 0.03), h.now)
        h.step(1)
    np.testing.assert_allclose(h.commands[-1].arm, mid_state(sim_arm)[:6] + 0.1, atol=1e-9)
    h.step(49)  # the last teleop message was one tick ago; teleop_timeout is 0.5 s
    assert h.commands[-1].source == "teleop"
    assert h.step(1).source == "policy"
    arm = np.array([c.arm for c in h.commands[-1:]])
    np.testing.assert_allclose(arm[-1], mid_state(sim_arm)[:6] + 0.1, atol=1e-3)  # hand-back starts in place
    h.step(60)
    np.testing.assert_allclose(h.commands[-1].arm, mid_state(sim_arm)[:6], atol=1e-9)


def test_estop_holds_latches_and_resets(sim_arm):
    h = Harness(sim_arm)
    h.step(2)
    h.chunk(np.tile(mid_state(sim_arm)[:6] + 0.2, (80, 1)))
    h.step(10)
    h.loop.on_lock("estop", True, h.now)
    assert all(h.step(1).hold for _ in range(5))
    h.loop.on_lock("estop", False, h.now)
    assert h.step(1).hold
    st = h.loop.status(h.now)
    assert st.estop_latched and "estop" in st.active_locks
    assert not h.loop.should_request_inference(h.now)
    diag = {d.name: d for d in h.loop.diagnostics(h.now)}
    assert diag["command mux"].level == Level.ERROR
    ok, _ = h.loop.reset_estop(h.now)
    assert ok
    assert h.step(1).hold  # the plan was dropped: the policy needs a fresh chunk first
    assert h.loop.should_request_inference(h.now)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)))
    assert h.step(1).source == "policy"


def test_pause_and_resume(sim_arm):
    h = Harness(sim_arm, ControlConfig(mux=MuxConfig(handback="auto")))  # the teleop below hands back by itself
    h.step(2)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)))
    h.step(2)
    h.loop.pause()
    cmd = h.step(1)
    assert cmd.hold and h.loop.status(h.now).paused
    assert not h.loop.should_request_inference(h.now)
    assert not h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)))  # in flight while pausing: dropped
    h.loop.on_teleop(ArmTarget(mid_state(sim_arm)[:6]), h.now)
    assert h.step(1).source == "teleop"  # teleop still works while paused
    h.loop.resume()
    assert h.loop.should_request_inference(h.now)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)))
    h.step(60)
    assert h.commands[-1].source == "policy"


def test_rtc_begin_inference_gives_prefix(sim_arm):
    h = Harness(sim_arm, ControlConfig(executor=ExecutorConfig(strategy="rtc", blend_steps=2, default_horizon=10)))
    h.step(1)
    obs = h.loop.sync.poll(h.now)
    assert h.loop.begin_inference(obs, h.now) is None  # nothing planned yet
    h.loop.on_chunk(make_chunk(sim_arm, obs.stamp, np.tile(mid_state(sim_arm)[:6], (10, 1))), 0.15, h.now)
    h.step(10)
    obs = h.loop.sync.poll(h.now)
    prefix = h.loop.begin_inference(obs, h.now + 0.01)
    assert isinstance(prefix, RtcPrefix)
    assert prefix.actions.shape == (10, 7)
    # expected latency = observation age (0.01) + p99 inference latency (0.15) -> actions at +0, +0.1 frozen
    assert prefix.frozen == 2
    np.testing.assert_allclose(prefix.actions[:, :6], np.tile(mid_state(sim_arm)[:6], (10, 1)))


def test_ensemble_has_no_prefix(sim_arm):
    h = Harness(sim_arm, ControlConfig(executor=ExecutorConfig(strategy="ensemble")))
    h.step(1)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (10, 1)))
    obs = h.loop.sync.poll(h.now + 0.001) or Observation(h.now, {}, mid_state(sim_arm), "")
    assert h.loop.begin_inference(obs, h.now) is None


def test_strategy_and_inference_rate_change_live_without_a_jump(sim_arm):
    h = Harness(sim_arm, ControlConfig(executor=ExecutorConfig(strategy="rtc", default_horizon=10)))
    h.step(1)
    start = mid_state(sim_arm)[:6]
    h.chunk(start + np.linspace(0.0, 0.1, 10)[:, None])
    h.step(20)
    before = h.commands[-1].arm.copy()
    h.loop.set_strategy("ensemble")
    assert h.loop.status(h.now).strategy == "ensemble"
    obs = h.loop.sync.poll(h.now)
    assert h.loop.begin_inference(obs, h.now) is None  # ensemble: no RTC prefix any more
    h.chunk(start + 0.3, stamp=obs.stamp)  # a far target: the plan blends into it
    h.step(1)
    step = np.abs(h.commands[-1].arm - before)
    assert np.all(step <= h.loop.filter.max_velocity * h.loop.period * 1.01 + 1e-12)
    with pytest.raises(ValueError, match="strategy must be one of"):
        h.loop.set_strategy("fastest")
    executor = h.loop.executor
    h.loop.set_inference_rate(2.0)
    assert executor.inference_period == pytest.approx(0.5)
    h.loop.set_inference_rate(0.0)  # 0: the robot's own rate
    assert executor.inference_period == pytest.approx(1.0 / sim_arm.rates.inference_hz)


def test_joint_delta_chunks_are_relative_to_the_observation_state():
    emb = small_robot(joints=2, action_type="joint_delta", vmax=5.0, amax=100.0)
    h = Harness(emb, state=[0.1, -0.2, 0.04])
    h.step(1)
    obs = h.loop.sync.poll(h.now)
    h.loop.begin_inference(obs, h.now)
    deltas = np.tile([0.05, 0.1, 0.03], (20, 1))
    chunk = ActionChunk(obs.stamp, 0.1, deltas, emb.action_names)
    assert emb.action_names == ("delta_j0", "delta_j1", "grip")
    assert h.loop.on_chunk(chunk, 0.01, h.now)
    h.step(80)
    np.testing.assert_allclose(h.commands[-1].arm, [0.15, -0.1], atol=1e-9)
    assert h.commands[-1].gripper == pytest.approx(0.03)
    # without the observation's state the delta cannot be resolved: a fault, not a guess
    assert not h.loop.on_chunk(ActionChunk(h.now + 5, 0.1, deltas, emb.action_names), 0.01, h.now)


def test_ee_delta_chunks_become_twists():
    emb = cartesian_robot("ee_delta")
    loop = ControlLoop(emb)
    state = np.append(np.zeros(6), 0.04)
    assert loop.tick(0.0, state).kind == "ee_twist"
    deltas = np.tile([0.01, 0.0, 0.0, 0.0, 0.0, 0.05, 0.04], (20, 1))  # per 0.1 s step
    loop.watchdog.config = WatchdogConfig(hold_on_stale=False)
    assert loop.on_chunk(ActionChunk(0.0, 0.1, deltas, emb.action_names), 0.0, 0.0)
    cmd = None
    for k in range(1, 99):
        cmd = loop.tick(k * 0.01, state, measured_ee_pose=np.array([0.0, 0.0, 0.5, 0, 0, 0]))
    # 0.1 m/s and 0.5 rad/s after the hand-over ramp from standstill (0.94 s at half the ramp rate)
    np.testing.assert_allclose(cmd.arm, [0.1, 0.0, 0.0, 0.0, 0.0, 0.5], atol=1e-9)
    assert cmd.source == "policy"


def test_status_and_diagnostics(sim_arm):
    h = Harness(sim_arm)
    h.loop.set_instruction("stack the blocks")
    h.step(1)
    h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)), latency=0.08)
    h.step(30)
    wild = np.tile(mid_state(sim_arm)[:6], (80, 1)) + 0.3 * (-1) ** np.arange(80)[:, None]
    h.chunk(wild, latency=0.08)  # a chunk zig-zagging 0.6 rad every 0.1 s: clamped
    h.step(30)
    st = h.loop.status(h.now)
    assert st.instruction == "stack the blocks"
    assert st.control_rate == pytest.approx(100.0)
    assert st.inference_latency_p50 == pytest.approx(0.08)
    assert st.clamp_count("acceleration") > 0
    assert len(st.clamp_names) == len(st.clamp_counts)
    assert st.stale_inputs == () and st.input_ages == ()
    diag = {d.name: d for d in h.loop.diagnostics(h.now)}
    assert set(diag) == {"control loop", "observation inputs", "inference", "safety filter", "command mux"}
    assert diag["safety filter"].level == Level.WARN and "acceleration" in diag["safety filter"].message
    assert diag["observation inputs"].level == Level.OK
    h.chunk(np.tile(mid_state(sim_arm)[:6], (80, 1)), latency=0.08)  # calm again
    h.step(200)
    h.loop.diagnostics(h.now)  # reports the clamps of the transition
    h.step(50)
    diag = {d.name: d for d in h.loop.diagnostics(h.now)}
    assert diag["safety filter"].level == Level.OK  # no new clamps since the last report
    h.loop.on_inference_error(ValueError("bad"), h.now)
    diag = {d.name: d for d in h.loop.diagnostics(h.now)}
    assert diag["inference"].level == Level.ERROR


def test_callbacks_from_another_thread_are_serialised(sim_arm):
    h = Harness(sim_arm)
    h.step(1)
    errors = []

    def inference():
        try:
            for i in range(200):
                stamp = h.now
                h.loop.on_chunk(make_chunk(sim_arm, stamp + 1e-6 * i, np.tile(mid_state(sim_arm)[:6], (20, 1))),
                                0.01, stamp)
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    thread = threading.Thread(target=inference)
    thread.start()
    h.step(300)
    thread.join()
    assert not errors and all(c is not None for c in h.commands)


def test_config_validation():
    with pytest.raises(ValueError):
        MuxConfig(policy_priority=200, teleop_priority=100)
    with pytest.raises(ValueError):
        ExecutorConfig(execute_steps=0)


@pytest.mark.parametrize("robot", ["franka_fr3", "ur5e", "so101", "sim_arm"])
def test_every_shipped_robot_starts_in_hold(repo_root, robot):
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(repo_root / "config" / "robots" / f"{robot}.yaml")
    loop = ControlLoop(emb)
    state = mid_state(emb)
    cmd = loop.tick(0.0, state)
    assert cmd.hold and cmd.source == "hold"
    assert cmd.gripper == pytest.approx(state[-1])
    if emb.action_space.type == "ee_delta":
        assert cmd.kind == "ee_twist" and np.all(cmd.arm == 0.0)  # holding a twist is standing still
    else:
        np.testing.assert_allclose(cmd.arm, state[:-1])
    assert loop.period == pytest.approx(1.0 / emb.rates.control_hz)
