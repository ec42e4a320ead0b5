"""rosbag2 write/read (mcap and sqlite3), metadata ROS tools need, corrupt bags, and replay as a Transport."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.typesys import get_types_from_msg

from vla_policy_node.msgs import (
    decode_action_chunk,
    decode_image,
    encode_action_chunk,
    encode_image,
    encode_joint_state,
    rosbags_factory,
)
from vla_policy_node.msgs.definitions import InterfaceDefinitions
from vla_policy_node.msgs.typestore import build_typestore, default_typestore, register_interfaces
from vla_policy_node.spec.types import ActionChunk
from vla_policy_node.transport import SENSOR_DATA_QOS, TransportError
from vla_policy_node.transport.bag import BagError, BagReader, BagTransport, BagWriter, read_bag

NEW = rosbags_factory()
T0 = 1_700_000_000_000_000_000  # ns


def _chunk(k: int) -> ActionChunk:
    return ActionChunk(stamp=k * 0.1, dt=0.05, actions=np.full((4, 2), float(k)), names=("x", "y"))


def _write_sample_bag(path, storage="mcap", n=5):
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    with BagWriter(path, storage) as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image", SENSOR_DATA_QOS)
        for k in range(n):
            t = T0 + k * 100_000_000
            writer.write("/joint_states", "sensor_msgs/msg/JointState",
                         encode_joint_state(NEW, ["j"], [float(k)], stamp=t * 1e-9), t + 5_000_000)
            writer.write("/camera/image_raw", "sensor_msgs/msg/Image", encode_image(NEW, rgb, "bgr8"), t)
            writer.write("/vla/chunk", "vla_msgs/msg/ActionChunk", encode_action_chunk(NEW, _chunk(k)), t + 50_000_000)
    return rgb


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_read_round_trip(tmp_path, storage):
    path = tmp_path / "bag"
    rgb = _write_sample_bag(path, storage)
    messages = list(read_bag(path))
    assert len(messages) == 15
    stamps = [m.timestamp_ns for m in messages]
    assert stamps == sorted(stamps)
    assert [m.topic for m in messages[:3]] == ["/camera/image_raw", "/joint_states", "/vla/chunk"]
    chunks = [decode_action_chunk(m.msg) for m in messages if m.topic == "/vla/chunk"]
    assert [c.actions[0, 0] for c in chunks] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert chunks[2].names == ("x", "y") and chunks[2].stamp == pytest.approx(0.2)
    np.testing.assert_array_equal(decode_image(messages[0].msg), rgb)
    only = list(read_bag(path, topics=["/joint_states"]))
    assert {m.topic for m in only} == {"/joint_states"} and len(only) == 5
    with BagReader(path) as reader:
        assert reader.topics["/vla/chunk"] == "vla_msgs/msg/ActionChunk"
        assert reader.message_count == 15 and reader.start_ns == T0


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_writes_from_several_callback_threads(tmp_path, storage):
    # rclpy's MultiThreadedExecutor and the DDS dispatch thread call the recorder from threads other than the
    # one that opened the bag; sqlite3 refused that ("objects created in a thread can only be used in that
    # same thread") and `vla_record --storage sqlite3` wrote nothing under ROS
    import threading

    writer = BagWriter(tmp_path / "bag", storage)

    def record(topic: str, offset: int) -> None:
        for k in range(50):
            t = T0 + (2 * k + offset) * 1_000_000
            writer.write(topic, "sensor_msgs/msg/JointState", encode_joint_state(NEW, ["j"], [float(k)]), t)

    threads = [threading.Thread(target=record, args=(f"/joints_{i}", i)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join()
    messages = list(read_bag(tmp_path / "bag"))
    assert len(messages) == 100 and {m.topic for m in messages} == {"/joints_0", "/joints_1"}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_metadata_has_what_ros2_bag_needs(tmp_path, storage):
    path = tmp_path / "bag"
    _write_sample_bag(path, storage)
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == storage and info["message_count"] == 15 and info["version"] >= 8
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    chunk = topics["/vla/chunk"]["topic_metadata"]
    assert chunk["type"] == "vla_msgs/msg/ActionChunk"
    assert chunk["type_description_hash"] == default_typestore().hash_rihs01("vla_msgs/msg/ActionChunk")
    assert chunk["serialization_format"] == "cdr"
    camera_qos = topics["/camera/image_raw"]["topic_metadata"]["offered_qos_profiles"][0]
    assert camera_qos["reliability"] == "best_effort" and camera_qos["depth"] == 5


def test_mcap_carries_message_definitions(tmp_path):
    path = tmp_path / "bag"
    _write_sample_bag(path, "mcap")
    with (path / "bag.mcap").open("rb") as stream:
        summary = make_reader(stream).get_summary()
    schemas = {s.name: s for s in summary.schemas.values()}
    chunk = schemas["vla_msgs/msg/ActionChunk"]
    assert chunk.encoding == "ros2msg"
    text = chunk.data.decode()
    assert "float64[] actions" in text and "MSG: std_msgs/Header" in text


def test_bag_with_other_definition_of_our_type_is_refused(tmp_path):
    old = build_typestore(include_vla_msgs=False)
    register_interfaces(old, InterfaceDefinitions("vla_msgs", messages={
        "vla_msgs/msg/ActionChunk": "std_msgs/Header header\nfloat64[] actions\n"}))
    with BagWriter(tmp_path / "old", typestore=old) as writer:
        writer.write("/vla/chunk", "vla_msgs/msg/ActionChunk", {"actions": [1.0]}, T0)
    with pytest.raises(BagError, match="different definition of vla_msgs/msg/ActionChunk"):
        BagReader(tmp_path / "old")


def test_bag_types_unknown_to_us_are_read_from_the_bag(tmp_path):
    other = build_typestore()
    other.register(get_types_from_msg("float64 speed\nstring label\n", "acme_msgs/msg/Belt"))
    with BagWriter(tmp_path / "acme", typestore=other) as writer:
        writer.write("/belt", "acme_msgs/msg/Belt", {"speed": 0.5, "label": "in"}, T0)
    (message,) = read_bag(tmp_path / "acme")
    assert (message.msgtype, message.msg.speed, message.msg.label) == ("acme_msgs/msg/Belt", 0.5, "in")


def _corrupt_file(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 64)


@pytest.mark.parametrize(
    ("storage", "damage"),
    [
        ("mcap", lambda p: _corrupt_file(p / "bag.mcap")),
        ("mcap", lambda p: (p / "bag.mcap").write_bytes(b"not an mcap file")),
        ("sqlite3", lambda p: (p / "bag.db3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)),
        ("mcap", lambda p: (p / "metadata.yaml").write_text("rosbag2_bagfile_information: [unbalanced")),
        ("mcap", lambda p: (p / "bag.mcap").unlink()),
        ("mcap", lambda p: shutil.rmtree(p)),
    ],
)
def test_corrupt_bags_give_a_clear_error(tmp_path, storage, damage):
    path = tmp_path / "bag"
    _write_sample_bag(path, storage)
    damage(path)
    with pytest.raises(BagError) as info:
        list(read_bag(path))
    assert str(path) in str(info.value)


def test_writer_refuses_unknown_storage_and_existing_path(tmp_path):
    with pytest.raises(BagError, match="unknown bag storage"):
        BagWriter(tmp_path / "x", storage="rosbag1")
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="cannot create"):
        BagWriter(tmp_path / "exists")


def test_replay_delivers_in_order_with_bag_time_and_records_outputs(tmp_path):
    _write_sample_bag(tmp_path / "in", "mcap")
    transport = BagTransport(tmp_path / "in", tmp_path / "out", keep_published=True)
    seen = []
    out = transport.publisher("/vla/command", "std_msgs/msg/Float64MultiArray")

    def on_state(msg):
        seen.append(("js", transport.now(), msg.position[0]))
        out.publish(transport.new_message("std_msgs/msg/Float64MultiArray", data=[msg.position[0] * 2]))

    transport.subscribe("/joint_states", "sensor_msgs/msg/JointState", on_state)
    transport.subscribe("/vla/chunk", "vla_msgs/msg/ActionChunk", lambda m: seen.append(("chunk", transport.now())))
    start = time.monotonic()
    assert transport.play(speed=None) == 10
    assert time.monotonic() - start < 0.3  # as fast as possible, not 0.405 s of recorded time
    transport.close()
    assert [s[0] for s in seen[:4]] == ["js", "chunk", "js", "chunk"]
    assert seen[0][1] == pytest.approx((T0 + 5_000_000) * 1e-9)
    recorded = list(read_bag(tmp_path / "out"))
    assert [m.msg.data.tolist() for m in recorded] == [[0.0], [2.0], [4.0], [6.0], [8.0]]
    assert recorded[1].timestamp_ns == T0 + 100_000_000 + 5_000_000  # stamped with replay time
    assert len(transport.published["/vla/command"]) == 5


def test_replay_at_recorded_timing_and_window(tmp_path):
    _write_sample_bag(tmp_path / "in", "sqlite3")
    transport = BagTransport(tmp_path / "in")
    got = []
    transport.subscribe("/joint_states", "sensor_msgs/msg/JointState", lambda m: got.append(time.monotonic()))
    assert transport.play(speed=2.0) == 5
    assert 0.19 <= got[-1] - got[0] < 0.3  # 0.4 s recorded, played at 2x
    got.clear()
    assert transport.play(speed=None, start=0.15, stop=0.35) == 2
    transport.close()


def test_replay_type_mismatch_and_local_services(tmp_path):
    _write_sample_bag(tmp_path / "in", "mcap")
    with BagTransport(tmp_path / "in") as transport:
        with pytest.raises(TransportError, match="holds sensor_msgs/msg/JointState"):
            transport.subscribe("/joint_states", "sensor_msgs/msg/Image", lambda m: None)
        transport.service("/vla/set_paused", "vla_msgs/srv/SetPaused",
                          lambda req: transport.new_response("vla_msgs/srv/SetPaused", success=req.paused))
        reply = transport.client("/vla/set_paused", "vla_msgs/srv/SetPaused").call(
            transport.new_request("vla_msgs/srv/SetPaused", paused=True))
        assert reply.success is True
