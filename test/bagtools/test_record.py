"""The recorder: a robot's topics and episode marks into a bag ROS tools can open, and the round trip
record -> replay -> convert on what it wrote."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader

from test.bagtools.helpers import demo_bag
from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
from vla_policy_node.bagtools.episodes import EventKind, decode_episode_event
from vla_policy_node.bagtools.record import RecordConfig, Recorder, handle_key
from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig
from vla_policy_node.bagtools.synthetic import ReachPolicy
from vla_policy_node.bagtools.topics import EPISODE_EVENT_TOPIC, MARK_EPISODE, MARK_EPISODE_SERVICE
from vla_policy_node.msgs import default_typestore, encode_float64_array, encode_image, encode_joint_state
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.transport.bag import BagReader, BagTransport, read_bag

# an operator's button presses, in seconds after the first message (episodes of the source bag: 0-2 s, 2.6-4.6 s)
MARKS = [(0.0, EventKind.START, "reach the red block"), (1.95, EventKind.SUCCESS, ""),
         (2.6, EventKind.START, "reach the blue block"), (4.55, EventKind.STOP, ""), (4.58, EventKind.FAILURE, "")]


def record_from_bag(source, out, emb, storage="mcap", marks=MARKS):
    """Play `source` into a Recorder; marks go through its service while the bag plays, at their times."""
    transport = BagTransport(source)
    recorder = Recorder(transport, emb, out, RecordConfig(storage=storage, instruction="warm up"))
    client = transport.client(MARK_EPISODE_SERVICE, MARK_EPISODE)
    pending, replies = list(marks), []
    t0 = transport.now()

    def operator(_msg) -> None:
        while pending and transport.now() - t0 >= pending[0][0] - 1e-9:
            _, kind, instruction = pending.pop(0)
            request = transport.new_request(MARK_EPISODE, event=int(kind), instruction=instruction)
            replies.append(client.call(request))

    transport.subscribe("/joint_states", "sensor_msgs/msg/JointState", operator)
    transport.play(speed=None)
    recorder.close()
    transport.close()
    return recorder, replies


def test_recorded_bag_has_the_robot_topics_marks_and_definitions(tmp_path, sim_arm):
    source = demo_bag(tmp_path / "source", sim_arm, marks=False)
    out = tmp_path / "recorded"
    _, replies = record_from_bag(source, out, sim_arm)
    assert all(r.success for r in replies) and [r.episode_index for r in replies] == [0, 0, 1, 1, 1]
    with BagReader(source) as src, BagReader(out) as rec:
        source_counts, recorded_counts = src.message_counts, rec.message_counts
        assert rec.topics[EPISODE_EVENT_TOPIC] == "vla_msgs/msg/EpisodeEvent"
    for topic, count in source_counts.items():
        extra = 3 if topic == "/vla/instruction" else 0  # the configured one and one per START with a task
        assert recorded_counts[topic] == count + extra, topic
    events = [decode_episode_event(m.msg) for m in read_bag(out, [EPISODE_EVENT_TOPIC])]
    assert [(e.kind, e.episode_index, e.instruction) for e in events] == [(k, i, text) for (_, k, text), i in
                                                                           zip(MARKS, [0, 0, 1, 1, 1], strict=True)]
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in info["topics_with_message_count"]}
    event_topic = topics[EPISODE_EVENT_TOPIC]
    assert event_topic["type_description_hash"] == default_typestore().hash_rihs01("vla_msgs/msg/EpisodeEvent")
    assert topics["/vla/instruction"]["offered_qos_profiles"][0]["durability"] == "transient_local"
    with next(out.glob("*.mcap")).open("rb") as stream:
        schemas = {s.name: s.data.decode() for s in make_reader(stream).get_summary().schemas.values()}
    assert "uint32 episode_index" in schemas["vla_msgs/msg/EpisodeEvent"]
    assert "uint8 START=0" in schemas["vla_msgs/msg/EpisodeEvent"]


def test_marks_that_do_not_fit_are_refused(tmp_path, sim_arm):
    source = demo_bag(tmp_path / "source", sim_arm, marks=False, episodes=1, episode_s=0.5, gap_s=0.2)
    recorder, replies = record_from_bag(source, tmp_path / "out", sim_arm, storage="sqlite3",
                                        marks=[(0.0, EventKind.STOP, ""), (0.1, EventKind.START, "")])
    assert [r.success for r in replies] == [False, True] and "without an open episode" in replies[0].message
    assert [decode_episode_event(m.msg).kind for m in read_bag(tmp_path / "out", [EPISODE_EVENT_TOPIC])] == [
        EventKind.START]  # a refused mark is not written
    assert handle_key(recorder, "e") == "refused: the recording is closed"
    assert "episodes" in handle_key(recorder, "?") and "s [instruction]" in handle_key(recorder, "x")
    assert handle_key(recorder, "q") is None


def test_round_trip_record_replay_convert(tmp_path, sim_arm):
    source = demo_bag(tmp_path / "source", sim_arm, marks=False)
    recorded = tmp_path / "recorded"
    record_from_bag(source, recorded, sim_arm)
    summary = OpenLoopReplay(sim_arm, ReachPolicy(sim_arm), ReplayConfig()).run(recorded).summary
    assert [e["outcome"] for e in summary["episodes"]] == ["success", "failure"]
    assert summary["chunk_error"]["mae"] < 1e-5
    converted = convert_bags([recorded], sim_arm, tmp_path / "dataset",
                             ConversionConfig(keep_outcomes=("success", "failure")))
    assert converted.episodes == 2 and converted.info["splits"] == {"train": "0:1", "val": "1:2"}
    samples = LeRobotSamples(tmp_path / "dataset", split="val")
    assert samples[0].instruction == "reach the blue block" and len(samples) == 20  # 2.6 s .. 4.5 s at 10 fps
    only_success = convert_bags([recorded], sim_arm, tmp_path / "success_only")
    assert only_success.episodes == 1 and only_success.dropped[0]["reason"] == "outcome failure"


def test_recording_a_live_dds_session(tmp_path, sim_arm):
    pytest.importorskip("cyclonedds")
    from vla_policy_node.transport.dds import DdsTransport
    from vla_policy_node.transport.dds_config import DdsConfig

    domain = random.SystemRandom().randint(1, 230)
    robot = DdsTransport(DdsConfig(node_name="fake_robot", loopback=True, domain_id=domain))
    station = DdsTransport(DdsConfig(node_name="vla_recorder", loopback=True, domain_id=domain))
    try:
        recorder = Recorder(station, sim_arm, tmp_path / "live")
        new = robot.new_message
        publishers = {topic: robot.publisher(topic, msgtype) for topic, msgtype in [
            ("/joint_states", "sensor_msgs/msg/JointState"), ("/scene_camera/image_raw", "sensor_msgs/msg/Image"),
            ("/wrist_camera/image_raw", "sensor_msgs/msg/Image"),
            ("/gripper_controller/commands", "std_msgs/msg/Float64MultiArray")]}
        client = robot.client(MARK_EPISODE_SERVICE, MARK_EPISODE)
        assert client.wait_for_service(10.0)
        started = client.call(robot.new_request(MARK_EPISODE, event=int(EventKind.START), instruction="wave"))
        assert started.success
        rgb = np.zeros((48, 64, 3), np.uint8)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and min(recorder.counts[t] for t in publishers) < 5:
            now = time.time()
            publishers["/joint_states"].publish(encode_joint_state(new, sim_arm.state_names, np.zeros(7), stamp=now))
            for camera in ("/scene_camera/image_raw", "/wrist_camera/image_raw"):
                publishers[camera].publish(encode_image(new, rgb, "rgb8", stamp=now))
            publishers["/gripper_controller/commands"].publish(encode_float64_array(new, [0.02]))
            time.sleep(0.02)
        assert client.call(robot.new_request(MARK_EPISODE, event=int(EventKind.SUCCESS))).success
        recorder.close()
    finally:
        station.close()
        robot.close()
    with BagReader(tmp_path / "live") as reader:
        counts = reader.message_counts
    assert all(counts[t] >= 5 for t in publishers), counts
    kinds = [decode_episode_event(m.msg).kind for m in read_bag(tmp_path / "live", [EPISODE_EVENT_TOPIC])]
    assert kinds == [EventKind.START, EventKind.SUCCESS]


def test_a_busy_recorder_keeps_every_joint_state_that_arrived_meanwhile(tmp_path, sim_arm):
    """While the recorder is busy (here: its write lock held, as a long image write or a starved process holds it)
    joint states keep arriving; it records them all afterwards. With sensor data's 5-deep history it kept only the
    last few (a CI run: 26 of ~470)."""
    pytest.importorskip("cyclonedds")
    from vla_policy_node.transport.dds import DdsTransport
    from vla_policy_node.transport.dds_config import DdsConfig

    domain = random.SystemRandom().randint(1, 230)
    robot = DdsTransport(DdsConfig(node_name="fake_robot", loopback=True, domain_id=domain))
    station = DdsTransport(DdsConfig(node_name="vla_recorder", loopback=True, domain_id=domain))
    sent = 300
    try:
        recorder = Recorder(station, sim_arm, tmp_path / "busy")
        publisher = robot.publisher("/joint_states", "sensor_msgs/msg/JointState")
        deadline = time.monotonic() + 10.0
        while recorder.counts["/joint_states"] == 0:  # matched and delivering
            assert time.monotonic() < deadline, "no joint state reached the recorder"
            publisher.publish(encode_joint_state(robot.new_message, sim_arm.state_names, np.zeros(7),
                                                 stamp=time.time()))
            time.sleep(0.02)
        time.sleep(0.2)
        before = recorder.counts["/joint_states"]
        with recorder._lock:  # busy: nothing is taken from the subscription meanwhile
            for i in range(sent):
                publisher.publish(encode_joint_state(robot.new_message, sim_arm.state_names, np.full(7, i / sent),
                                                     stamp=time.time()))
                time.sleep(0.001)
            time.sleep(0.5)
        deadline = time.monotonic() + 10.0
        while recorder.counts["/joint_states"] < before + sent and time.monotonic() < deadline:
            time.sleep(0.05)
        recorded = recorder.counts["/joint_states"] - before
        recorder.close()
    finally:
        station.close()
        robot.close()
    assert recorded == sent, f"recorded {recorded} of the {sent} joint states sent while the recorder was busy"
