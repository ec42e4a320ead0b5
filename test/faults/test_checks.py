"""The fault suite's own checks, on synthetic command streams: a checker that cannot fail proves nothing."""

from __future__ import annotations

import numpy as np
import pytest

from test.faults.fault_policy import FaultInjectingPolicy, InjectedModelFault
from test.faults.monitor import REST_TRAVEL, Limits, beyond_path, rest_start, status_text
from vla_policy_node.spec.types import ActionChunk


@pytest.fixture()
def limits(sim_arm) -> Limits:
    return Limits.of(sim_arm)


def _ramp(limits: Limits, n: int, speed_fraction: float) -> np.ndarray:
    """Joint 0 accelerating at half its limit up to speed_fraction of its max velocity, the others still."""
    t = limits.period
    v = np.minimum(np.arange(n) * 0.5 * limits.max_acceleration[0] * t, speed_fraction * limits.max_velocity[0])
    q = np.zeros((n, len(limits.names)))
    q[:, 0] = np.cumsum(v) * t
    return q


def test_a_stream_within_the_limits_passes(limits):
    q = _ramp(limits, 120, 0.9)
    velocities = np.diff(q, axis=0, prepend=q[:1]) / limits.period
    assert limits.violations(q, velocities) == []


def test_every_kind_of_violation_is_caught(limits):
    q = _ramp(limits, 120, 0.9)
    t = limits.period
    outside = q.copy()
    outside[-1, 1] = limits.upper[1] + 1e-3
    assert any("above its limit" in v for v in limits.violations(outside, None))
    fast = q.copy()
    fast[60:, 2] += 1.01 * limits.max_velocity[2] * t  # one step a hair over max velocity
    assert any("rad/s >" in v for v in limits.violations(fast, None))
    jerky = q.copy()
    jerky[60:, 3] += np.arange(60) * 1.05 * limits.max_acceleration[3] * t * t  # starts moving too abruptly
    problems = limits.violations(jerky, None)
    assert any("accelerated" in v for v in problems) and not any("rad/s >" in v for v in problems)
    velocities = np.zeros_like(q)
    velocities[5, 0] = 1.1 * limits.max_velocity[0]
    assert any("trajectory velocity" in v for v in limits.violations(q, velocities))


def test_gripper_range_and_speed(limits):
    ok = np.linspace(limits.gripper_upper, limits.gripper_lower, 50)
    ok = np.maximum(ok, limits.gripper_upper - np.arange(50) * limits.gripper_step)
    assert limits.gripper_violations(ok) == []
    assert limits.gripper_violations(np.array([0.0, limits.gripper_upper + 0.01]))
    assert limits.gripper_violations(np.array([0.0, 2.5 * limits.gripper_step]))


def test_braking_time_grows_with_speed(limits):
    still = limits.braking_time(np.zeros(len(limits.names)))
    fast = limits.braking_time(limits.max_velocity)
    assert 0 < still < fast and fast >= float(np.max(limits.max_velocity / limits.max_acceleration))


def test_beyond_path_measures_from_every_commanded_position_not_a_straight_segment():
    start = np.array([0.0, 0.0])
    path = np.array([[0.004, 0.0], [0.010, -0.002], [0.005, -0.001]])  # joint 0 goes out to 0.010 and back
    np.testing.assert_allclose(beyond_path(np.array([0.009, -0.001]), start, path), [0.0, 0.0])
    np.testing.assert_allclose(beyond_path(np.array([0.013, 0.001]), start, path), [0.003, 0.001])
    np.testing.assert_allclose(beyond_path(np.array([-0.002, -0.005]), start, np.empty((0, 2))), [0.002, 0.005])


def test_status_text_takes_every_text_field():
    status = {"active_source": "hold", "fault": "", "stale_inputs": ["joint_states"], "instruction": "secret",
              "sensor_fault": "joint3 reads 3.5", "clamp_names": ["position"], "input_ages": [0.3]}
    text = status_text(status)
    assert "joint3 reads 3.5" in text and "joint_states" in text and "hold" in text
    assert "secret" not in text and "position" not in text and "fault=" not in text.replace("sensor_fault=", "")


def test_rest_start_allows_a_creeping_tail_not_motion():
    q = np.zeros((100, 2))
    q[:50, 0] = np.linspace(0.0, 0.5, 50)  # moving, then stopped at command 49
    q[50:, 0] = 0.5 + np.cumsum(np.full(50, 0.4 * REST_TRAVEL / 50))  # a creep of 0.4 mrad in all
    assert rest_start(q) in (48, 49)
    q[-1, 1] = 2 * REST_TRAVEL  # the last command moves: not at rest
    assert rest_start(q) is None
    assert rest_start(q[:1]) is None


class _Inner:
    def infer(self, observation, *, prefix=None):
        return ActionChunk(stamp=1.0, dt=0.1, actions=np.zeros((4, 2)), names=("a", "b"))


def test_fault_policy_modes(tmp_path):
    control = tmp_path / "mode"
    policy = FaultInjectingPolicy(_Inner(), control)
    assert np.all(policy.infer(None).actions == 0)  # no file: ok
    control.write_text("raise")
    with pytest.raises(InjectedModelFault):
        policy.infer(None)
    control.write_text("nan ")  # a new mtime, and whitespace is ignored
    import os
    os.utime(control, ns=(0, 10**18))
    assert np.all(np.isnan(policy.infer(None).actions))
    control.write_text("stall 0.05")
    os.utime(control, ns=(0, 2 * 10**18))
    assert policy.infer(None).actions.shape == (4, 2)
    events = [line.split()[0] for line in (tmp_path / "mode.events").read_text().splitlines()]
    assert events == ["raise", "nan", "stalling", "stall"]


def test_monitor_reasons_and_counters(sim_arm):
    """Reasons come from what the nodes say now, counters count only when they grow: an input named in every
    diagnostics message, or a counter counted once long ago, must not pass a check."""
    from test.fake_transport import RecordingTransport
    from test.faults.monitor import Monitor
    from vla_policy_node.msgs.diagnostics import DiagnosticEntry, encode_diagnostics

    t = RecordingTransport()
    monitor = Monitor(t, sim_arm)

    def diagnostics(message: str, rejected: int) -> None:
        values = {"joint_states": "0.010", "joint_states.out_of_order": str(rejected)}
        entry = DiagnosticEntry(1, "vla_policy: observation inputs", message, values)
        t.inject("/diagnostics", encode_diagnostics(t.new_message, [entry], stamp=1.0))

    import time

    diagnostics("all inputs fresh", 3)
    t0 = time.monotonic()
    time.sleep(0.01)
    assert "joint_states" not in monitor.texts(0.0) and "observation" not in monitor.texts(0.0)
    diagnostics("stale: joint_states", 3)
    assert "stale: joint_states" in monitor.texts(t0)
    assert monitor.counted(t0, time.monotonic(), "out_of_order") == []  # 3 before, 3 after: nothing new
    diagnostics("stale: joint_states", 5)
    assert monitor.counted(t0, time.monotonic(), "joint_states", "out_of_order") == [
        "vla_policy: observation inputs/joint_states.out_of_order"]
