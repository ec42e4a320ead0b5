"""RealSense camera: clear failure without a device, the device driver on a stand-in, frames -> messages."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import numpy as np
import pytest

from test.camera.fake_realsense import (
    Distortion,
    Domain,
    FakeDevice,
    FakeFrame,
    FakeFrameset,
    FakeRealSense,
    intrinsics,
)
from test.fake_transport import RecordingTransport
from vla_policy_node.devices.realsense import RealSenseCamera, RealSenseConfig, RealSenseError, RealSenseFrames
from vla_policy_node.msgs import decode_depth, decode_image, default_typestore, rosbags_factory
from vla_policy_node.msgs.camera_info import CameraIntrinsics, decode_camera_info
from vla_policy_node.nodes.realsense_camera import (
    CameraTopics,
    RealSenseCameraNode,
    frames_to_messages,
    run,
)
from vla_policy_node.transport.factory import strip_ros_args

NO_DEVICE = "no RealSense device connected (pyrealsense2 found 0 devices)"
INTRINSICS = CameraIntrinsics(8, 6, 600.5, 601.25, 3.75, 2.5, "plumb_bob", (0.1, -0.2, 0.001, 0.002, 0.05))


def _pyrealsense2() -> Any:
    return pytest.importorskip("pyrealsense2", reason="pyrealsense2 (with libusb-1.0) is not installed")


def test_real_pyrealsense2_without_a_device_raises_a_clear_error() -> None:
    rs = _pyrealsense2()
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected")
    camera = RealSenseCamera(RealSenseConfig())
    with pytest.raises(RealSenseError) as info:
        camera.start()
    assert str(info.value) == NO_DEVICE
    assert not camera.running
    with pytest.raises(RealSenseError, match=r"found 0 devices"), RealSenseCamera():
        pass


def test_node_exits_with_status_1_and_the_reason_without_a_device(caplog: pytest.LogCaptureFixture) -> None:
    rs = _pyrealsense2()
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected")
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="realsense_camera"):
        status = run(["--transport", "dds", "--width", "1280", "--ros-args", "-p", "fps:=15", "--"])
    assert status == 1
    assert time.monotonic() - started < 5.0
    assert f"RealSenseError: {NO_DEVICE}" in caplog.text


def _fake(**kwargs: Any) -> FakeRealSense:
    fake = FakeRealSense(devices=[FakeDevice("111"), FakeDevice("222", depth_scale=0.0001)], **kwargs)
    fake.intrinsics = intrinsics()
    return fake


def _frameset(stamp_ms: float = 1_700_000_000_123.0, domain: Domain = Domain.global_time) -> FakeFrameset:
    color = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    depth = np.full((6, 8), 1000, dtype=np.uint16)
    return FakeFrameset(FakeFrame(color, stamp_ms, domain), FakeFrame(depth, stamp_ms, domain))


def test_stand_in_with_devices_but_not_the_requested_serial() -> None:
    message = r"no RealSense device with serial '999' connected \(connected: 111, 222\)"
    with pytest.raises(RealSenseError, match=message):
        RealSenseCamera(RealSenseConfig(serial_no="999"), rs=_fake()).start()
    with pytest.raises(RealSenseError, match=re.escape(NO_DEVICE)):
        RealSenseCamera(rs=FakeRealSense()).start()


def test_start_configures_color_and_aligned_depth_and_reads_intrinsics() -> None:
    fake = _fake()
    camera = RealSenseCamera(RealSenseConfig(width=8, height=6, fps=15), rs=fake)
    camera.start()
    assert fake.started_with == "111" and camera.serial_no == "111"
    assert fake.enabled == [
        (fake.stream.color, 8, 6, fake.format.rgb8, 15),
        (fake.stream.depth, 0, 0, fake.format.z16, 15),  # 0 x 0: the device's default depth mode
    ]
    assert camera.intrinsics == INTRINSICS
    camera.stop()
    assert fake.stopped and not camera.running


def test_read_copies_frames_converts_depth_to_mm_and_uses_host_timestamps() -> None:
    fake = _fake(frames=[_frameset(), _frameset(domain=Domain.hardware_clock)])
    camera = RealSenseCamera(RealSenseConfig(serial_no="222", frame_timeout=0.5), rs=fake)  # depth unit 0.1 mm
    camera.start()
    source = fake.frames[0].color.data
    frames = camera.read()
    source[:] = 0  # the device recycles its buffers: what was read must not change
    assert frames.color.dtype == np.uint8 and frames.color.shape == (6, 8, 3) and frames.color.any()
    assert frames.depth is not None and frames.depth.dtype == np.uint16
    assert np.all(frames.depth == 100)  # 1000 units of 0.1 mm
    assert frames.stamp == pytest.approx(1_700_000_000.123)
    assert camera.read().stamp is None  # device clock: the node stamps with its own clock
    assert fake.waits_ms == [500, 500]
    with pytest.raises(RealSenseError, match=r"no frames from RealSense 222 within 0\.5 s"):
        camera.read()


def test_color_only_and_unsupported_modes() -> None:
    fake = _fake(frames=[_frameset()])
    camera = RealSenseCamera(RealSenseConfig(enable_depth=False), rs=fake)
    camera.start()
    assert [args[0] for args in fake.enabled] == [fake.stream.color]
    assert camera.read().depth is None
    fake = _fake(start_error="Couldn't resolve requests")
    with pytest.raises(RealSenseError, match=r"cannot stream color 1920x1080@60 rgb8, depth anyxany: Couldn't resolve"):
        RealSenseCamera(RealSenseConfig(width=1920, height=1080, fps=60), rs=fake).start()
    with pytest.raises(RealSenseError, match="not started"):
        RealSenseCamera(rs=_fake()).read()


def test_kannala_brandt_is_published_as_equidistant() -> None:
    fake = _fake()
    fake.intrinsics = intrinsics(model=Distortion.kannala_brandt4)
    camera = RealSenseCamera(rs=fake)
    camera.start()
    assert camera.intrinsics is not None and camera.intrinsics.distortion_model == "equidistant"


def test_topics_follow_realsense2_camera_names() -> None:
    topics = CameraTopics.for_camera()
    assert topics.color_image == "/camera/camera/color/image_raw"
    assert topics.depth_image == "/camera/camera/aligned_depth_to_color/image_raw"
    assert topics.color_info == "/camera/camera/color/camera_info"
    assert topics.depth_info == "/camera/camera/aligned_depth_to_color/camera_info"
    assert topics.frame_id == "camera_color_optical_frame"
    wrist = CameraTopics.for_camera("wrist_camera", "camera")
    assert wrist.color_image == "/wrist_camera/camera/color/image_raw"
    assert CameraTopics.for_camera("", "front").color_image == "/front/color/image_raw"


def test_frames_become_ros_image_and_camera_info_messages() -> None:
    store = default_typestore()
    new = rosbags_factory(store)
    color = np.random.default_rng(0).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    depth = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000
    topics = CameraTopics.for_camera()
    messages = dict(frames_to_messages(new, RealSenseFrames(color, depth, None), INTRINSICS, topics, 12.5))
    assert set(messages) == {topics.color_image, topics.color_info, topics.depth_image, topics.depth_info}
    for topic, msg in messages.items():  # each message survives CDR, as on the wire or in a bag
        messages[topic] = store.deserialize_cdr(bytes(store.serialize_cdr(msg, msg.__msgtype__)), msg.__msgtype__)

    image = messages[topics.color_image]
    assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 8, 6, 24)
    np.testing.assert_array_equal(decode_image(image), color)
    depth_msg = messages[topics.depth_image]
    assert (depth_msg.encoding, depth_msg.step) == ("16UC1", 16)
    np.testing.assert_array_equal(decode_depth(depth_msg), depth)
    for msg in messages.values():
        assert msg.header.frame_id == "camera_color_optical_frame"
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 500_000_000)

    info = messages[topics.color_info]
    assert (info.width, info.height, info.distortion_model) == (8, 6, "plumb_bob")
    np.testing.assert_allclose(info.k, [600.5, 0, 3.75, 0, 601.25, 2.5, 0, 0, 1])
    np.testing.assert_allclose(info.p, [600.5, 0, 3.75, 0, 0, 601.25, 2.5, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(info.r, np.eye(3).reshape(-1))
    np.testing.assert_allclose(info.d, [0.1, -0.2, 0.001, 0.002, 0.05])
    assert decode_camera_info(messages[topics.depth_info]) == INTRINSICS

    color_only = frames_to_messages(new, RealSenseFrames(color, None, None), INTRINSICS, topics, 0.0)
    assert [topic for topic, _ in color_only] == [topics.color_image, topics.color_info]


def test_node_publishes_every_frame_set_until_the_camera_fails() -> None:
    fake = _fake(frames=[_frameset(), _frameset(domain=Domain.hardware_clock)])
    camera = RealSenseCamera(RealSenseConfig(width=8, height=6), rs=fake)
    camera.start()
    transport = RecordingTransport(clock=42.0)
    node = RealSenseCameraNode(transport, camera, CameraTopics.for_camera("wrist_camera", "camera"))
    with pytest.raises(RealSenseError, match="no frames"):
        node.spin(threading.Event())
    assert node.published == 2
    kinds = [(topic, msgtype) for topic, msgtype, _ in transport.sent[:4]]
    assert kinds == [
        ("/wrist_camera/camera/color/image_raw", "sensor_msgs/msg/Image"),
        ("/wrist_camera/camera/color/camera_info", "sensor_msgs/msg/CameraInfo"),
        ("/wrist_camera/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image"),
        ("/wrist_camera/camera/aligned_depth_to_color/camera_info", "sensor_msgs/msg/CameraInfo"),
    ]
    first, second = transport.sent[0][2], transport.sent[4][2]
    assert first.header.stamp.sec == 1_700_000_000  # device host-clock stamp
    assert second.header.stamp.sec == 42  # device clock: the transport's clock


def test_stopped_node_publishes_nothing_and_ros_args_are_stripped() -> None:
    camera = RealSenseCamera(rs=_fake(frames=[_frameset()]))
    camera.start()
    node = RealSenseCameraNode(RecordingTransport(), camera, CameraTopics.for_camera())
    stop = threading.Event()
    stop.set()
    node.spin(stop)
    assert node.published == 0
    argv = ["--fps", "15", "--ros-args", "-r", "__node:=cam", "-p", "width:=8", "--", "--no-depth", "--ros-args", "-p"]
    assert strip_ros_args(argv) == ["--fps", "15", "--no-depth"]
