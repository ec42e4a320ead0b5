"""Holes in a recorded sensor stream: found from the header stamps while recording, reported when it ends."""

from __future__ import annotations

import numpy as np

from test.fake_transport import RecordingTransport
from vla_policy_node.bagtools.record import Recorder
from vla_policy_node.bagtools.stream_gaps import StampGaps
from vla_policy_node.msgs import encode_joint_state


def jittered_stamps(n: int, period: float, jitter: float, seed: int = 0) -> np.ndarray:
    """n stamps `period` apart, each moved by up to +-jitter * period (a driver that is not real-time)."""
    rng = np.random.default_rng(seed)
    return 100.0 + np.arange(n) * period + rng.uniform(-jitter, jitter, n) * period


def fed(stamps) -> StampGaps:
    gaps = StampGaps()
    for stamp in stamps:
        gaps.add(float(stamp))
    return gaps


def test_a_steady_stream_with_jittered_stamps_has_no_holes():
    gaps = fed(jittered_stamps(3000, 0.001, 0.2))
    assert gaps.holes == 0 and gaps.messages == 3000
    assert abs(gaps.typical - 0.001) < 0.0001


def test_two_missing_samples_in_a_row_are_a_hole_of_the_right_length():
    stamps = jittered_stamps(3000, 0.001, 0.2)
    kept = np.delete(stamps, [1500, 1501])
    gaps = fed(kept)
    assert gaps.holes == 1
    assert abs(gaps.longest - (stamps[1502] - stamps[1499])) < 1e-12
    assert "1 hole(s)" in gaps.describe("/joint_states") and "longest 3 ms" in gaps.describe("/joint_states")


def test_a_camera_that_stalls_for_half_a_second_is_one_hole():
    stamps = np.concatenate([100.0 + np.arange(60) / 30, 102.5 + np.arange(60) / 30])
    gaps = fed(stamps)
    assert gaps.holes == 1 and abs(gaps.longest - (102.5 - stamps[59])) < 1e-9


def test_repeated_and_out_of_order_stamps_are_counted_but_are_not_holes():
    stamps = list(jittered_stamps(200, 0.01, 0.1))
    stamps[50], stamps[51] = stamps[51], stamps[50]
    stamps.insert(120, stamps[119])
    gaps = fed(stamps)
    assert gaps.messages == 201 and gaps.holes == 0


class RecorderTransport(RecordingTransport):
    """RecordingTransport plus the mark service the recorder offers (not called here)."""

    def service(self, *args, **kwargs):
        return type("Service", (), {"close": lambda self: None})()


def test_the_recorder_reports_the_holes_of_each_sensor_stream(tmp_path, sim_arm):
    transport = RecorderTransport()
    recorder = Recorder(transport, sim_arm, tmp_path / "holes")
    stamps = np.delete(100.0 + np.arange(300) * 0.01, range(100, 110))  # 100 Hz, 0.1 s missing
    for stamp in stamps:
        transport.inject("/joint_states", encode_joint_state(transport.new_message, sim_arm.state_names,
                                                             np.zeros(len(sim_arm.state_names)), stamp=stamp))
    recorder.close()
    streams = recorder.status()["sensor_streams"]
    assert set(streams) == {"/joint_states", *(cam.topic for cam in sim_arm.cameras)}
    assert streams["/joint_states"]["messages"] == 290 and streams["/joint_states"]["holes"] == 1
    assert abs(streams["/joint_states"]["longest_s"] - 0.11) < 1e-9
    assert recorder.counts["/joint_states"] == 290  # what arrived is all written
    report = recorder.stream_report()
    assert any(line.startswith("/joint_states: 290 messages, 1 hole(s)") for line in report)
    assert any(line == f"{sim_arm.cameras[0].topic}: 0 messages, no holes" for line in report)
