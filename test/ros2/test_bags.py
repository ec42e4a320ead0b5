"""rosbag2 both ways with the real tools: `ros2 bag record` (mcap and sqlite3) of the simulated arm's topics
replays through `vla_replay_test`; bags from our recorder (`vla_record`, both storages) pass `ros2 bag info` and
`ros2 bag play` publishes their messages to an rclpy subscriber."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test.ros2.conftest import (
    BAGS_RECORDED,
    REPO,
    SHIPPED,
    NodeRun,
    SpunNode,
    Workspace,
    assert_all_gone,
    process_ends,
    ros2_cli,
    subscribe,
    wait_until,
)

SIM_ARM = REPO / "config" / "robots" / "sim_arm.yaml"
STORAGES = ("mcap", "sqlite3")
FRAMES = 30  # camera frames recorded (10 Hz: 3 s of a sim that keeps up)


def sim_topics() -> list[str]:
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(SIM_ARM)
    return [emb.joint_states.topic, *(camera.topic for camera in emb.cameras), "/robot_description"]


@pytest.fixture(scope="module")
def recorded(workspace: Workspace, ros_env: dict[str, str], rclpy_node: SpunNode, tmp_path_factory
             ) -> dict[str, Path]:
    """The sim arm's driver (rclpy) running, recorded at once by `ros2 bag record` (mcap, sqlite3) and by
    `vla_record` (mcap, sqlite3) until FRAMES camera frames have gone by (the sim's rate depends on the
    machine's load); then the driver stops. Bag directories by name. The background launch tests start after
    it (BAGS_RECORDED)."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    frames: list[float] = []
    camera = subscribe(rclpy_node.node, Image, sim_topics()[1], lambda _: frames.append(time.monotonic()),
                                                 qos_profile_sensor_data)
    out = tmp_path_factory.mktemp("bags")
    bin_dir = workspace.root / "install" / "vla_policy_node" / "lib" / "vla_policy_node"
    sim = NodeRun([str(bin_dir / "sim_arm_driver"), "--robot-config", str(SIM_ARM)], ros_env, out / "sim.log",
                  "sim_arm_driver")
    bags = {f"ros2_{s}": out / f"ros2_{s}" for s in STORAGES} | {f"vla_{s}": out / f"vla_{s}" for s in STORAGES}
    recorders: list[NodeRun] = []
    try:
        wait_until(lambda: "commands from" in sim.text() or not sim.alive(), 120.0, "the sim arm to start")
        assert sim.alive(), sim.tail()
        for storage in STORAGES:
            recorders.append(NodeRun(["ros2", "bag", "record", "-s", storage, "-o", str(bags[f"ros2_{storage}"]),
                                      *sim_topics()], ros_env, out / f"ros2_{storage}.log"))
            recorders.append(NodeRun([str(bin_dir / "vla_record"), "--robot", str(SIM_ARM), "--storage", storage,
                                      "-o", str(bags[f"vla_{storage}"]), "--no-keys",
                                      "--instruction", "reach the red block"], ros_env, out / f"vla_{storage}.log"))
        wait_until(lambda: all("Recording..." in r.text() for r in recorders[::2])
                   and all("vla_record: recording" in r.text() for r in recorders[1::2]), 120.0, "the recorders")
        start = time.monotonic()
        wait_until(lambda: len([t for t in frames if t > start]) >= FRAMES, 120.0, f"{FRAMES} camera frames")
    finally:
        codes = [(recorder, recorder.stop(30.0)) for recorder in recorders]
        sim.stop()
        rclpy_node.node.destroy_subscription(camera)
        BAGS_RECORDED.set()  # the background launch tests may start
    for recorder, code in codes:
        assert code in (0, -2), recorder.tail()
    return bags


def test_ros2_bag_record_of_the_sim_replays_through_vla_replay_test(recorded, workspace, ros_env) -> None:
    replay = workspace.root / "install" / "vla_policy_node" / "lib" / "vla_policy_node" / "vla_replay_test"

    def run(storage: str) -> subprocess.CompletedProcess:
        bag = recorded[f"ros2_{storage}"]
        return subprocess.run([str(replay), str(bag), "--robot", str(SIM_ARM), "--checkpoint", str(SHIPPED),
                               "--instruction", "reach the red block", "--no-progress", "-o",
                               str(bag.parent / f"report_{storage}")], env=ros_env, capture_output=True, text=True,
                              timeout=600)

    with ThreadPoolExecutor(len(STORAGES)) as pool:
        results = dict(zip(STORAGES, pool.map(run, STORAGES), strict=True))
    for storage, result in results.items():
        assert result.returncode == 0, f"{storage}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        report = json.loads((recorded[f"ros2_{storage}"].parent / f"report_{storage}" / "report.json").read_text())
        counts = report["counts"]
        assert counts["observations"] > 0 and counts["inferences"] > 0, f"{storage}: {counts}"


def test_replay_launch_plays_a_recorded_bag_and_ends_by_itself(recorded, ros_env, tmp_path) -> None:
    """`ros2 launch vla_bringup replay.launch.py` on a `ros2 bag record` of the sim: bag play (with /clock) and
    the sim arm's launch on sim time, without the live sim driver (the bag is the robot); when the bag has
    played the launch ends by itself, exit 0, every process stopped cleanly (the nodes may still be starting)."""
    result = subprocess.run(["ros2", "launch", "vla_bringup", "replay.launch.py", f"bag:={recorded['ros2_mcap']}",
                             "robot:=sim_arm", f"checkpoint:={SHIPPED}", "rviz:=false"], env=ros_env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    started = {line.split("]")[1].split("[")[1].rsplit("-", 1)[0] for line in out.splitlines()
               if "process started with pid" in line}
    assert started == {"bag_play", "policy_node", "command_mux_node"}, out  # no sim_arm_driver
    assert "the bag has played: shutting the replay down" in out, out
    ends = process_ends(out)
    assert ends["bag_play"] == 0, out
    # SIGINT'ed when the bag ended, running or still starting: stopped by it (0, or -2 when it landed in the
    # console script's own imports, before our guard), nothing left running
    assert ends["policy_node"] in (0, -2) and ends["command_mux_node"] in (0, -2), out
    assert_all_gone(out)


def wait_while_arriving(count, target: int, what: str, stall: float = 10.0) -> None:
    """Until `count()` reaches `target`; fails once nothing more has arrived for `stall` seconds (a starved
    process takes what was sent late, but takes it)."""
    last, last_change = count(), time.monotonic()
    while (now := count()) < target:
        if now != last:
            last, last_change = now, time.monotonic()
        assert time.monotonic() - last_change < stall, f"{what}: {now} of {target}, none for {stall:.0f} s"
        time.sleep(0.05)


def recorded_joint_stamps(bag: Path) -> list[float]:
    """The header stamps of the bag's /joint_states, in the bag's order (read with rosbags, not ROS)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_JAZZY)
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == "/joint_states"]
        stamps = []
        for connection, _, raw in reader.messages(connections=connections):
            stamp = typestore.deserialize_cdr(raw, connection.msgtype).header.stamp
            stamps.append(stamp.sec + stamp.nanosec * 1e-9)
    return stamps


@pytest.mark.parametrize("storage", STORAGES)
def test_vla_record_bags_pass_ros2_bag_info_and_play(storage, recorded, ros_env, rclpy_node: SpunNode,
                                                     tmp_path) -> None:
    """`ros2 bag info` reads the bag; `ros2 bag play` publishes its joint states, which an rclpy subscriber
    (sensor-data QoS, as a robot node subscribes) receives with the recorded stamps, in order. Event-driven:
    the player starts paused; it resumes only once a joint state sent by `play_next` has reached the subscriber
    (best effort and volatile: what goes out before both sides of the match exist is lost, and under load
    discovery takes seconds). The subscriber's history holds the whole bag: sensor data's 5-deep one keeps only
    the last 5 of what a CPU-starved test process has not taken yet (the bag plays at 4x, ~400 joint states/s)."""
    from rclpy.qos import HistoryPolicy, QoSProfile, qos_profile_sensor_data
    from rosbag2_interfaces.srv import PlayNext, Resume
    from sensor_msgs.msg import JointState

    bag = recorded[f"vla_{storage}"]
    info = ros2_cli(ros_env, "bag", "info", str(bag))
    assert f"Storage id:        {storage}" in info, info
    joint_line = next(line for line in info.splitlines() if "Topic: /joint_states " in line)
    recorded_count = int(joint_line.split("Count:")[1].split("|")[0])
    report = (bag.parent / f"vla_{storage}.log").read_text()  # vla_record's own account when it ended
    assert f"vla_record: /joint_states: {recorded_count} messages" in report, report
    assert recorded_count > FRAMES, info + report  # joint states come at ten times the camera rate
    recorded_stamps = recorded_joint_stamps(bag)
    assert len(recorded_stamps) == recorded_count
    received: list[float] = []
    lock = threading.Lock()

    def on_joint_state(msg) -> None:
        with lock:
            received.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    node = rclpy_node.node
    sensor_data_whole_bag = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=recorded_count,
                                       reliability=qos_profile_sensor_data.reliability,
                                       durability=qos_profile_sensor_data.durability)
    subscription = subscribe(node, JointState, "/joint_states", on_joint_state, sensor_data_whole_bag)
    resume, play_next = node.create_client(Resume, "/rosbag2_player/resume"), node.create_client(
        PlayNext, "/rosbag2_player/play_next")
    player = NodeRun(["ros2", "bag", "play", str(bag), "--rate", "4.0", "--start-paused",
                      "--disable-keyboard-controls"], ros_env, tmp_path / "play.log", "ros2 bag play")

    def call(client, request):
        future = client.call_async(request)
        wait_until(future.done, 60.0, f"the reply of {client.srv_name}")
        return future.result()

    try:
        for client in (resume, play_next):
            assert client.wait_for_service(timeout_sec=120.0), player.tail()
        wait_until(lambda: subscription.get_publisher_count() >= 1 or not player.alive(), 120.0,
                   "the player's /joint_states publisher")
        # one message at a time until a joint state arrives: then both sides have matched
        deadline = time.monotonic() + 120.0
        while not received:
            assert player.alive() and time.monotonic() < deadline, player.tail()
            sent = len(received)
            assert call(play_next, PlayNext.Request()).success, "the bag ended before a joint state arrived"
            step_end = time.monotonic() + 0.5
            while len(received) == sent and time.monotonic() < step_end:
                time.sleep(0.01)
        call(resume, Resume.Request())
        wait_until(lambda: not player.alive(), 120.0, "the player to finish the bag")
        assert player.process.returncode == 0, player.tail()
        wait_while_arriving(lambda: len(received), recorded_count // 2, "the played joint states")
    finally:
        player.stop()
        node.destroy_client(resume)
        node.destroy_client(play_next)
        node.destroy_subscription(subscription)
    with lock:
        got = list(received)
    assert set(got) <= set(recorded_stamps), "a joint state that is not in the bag"
    assert got == sorted(got, key=recorded_stamps.index)  # in recorded order
    assert got == sorted(got)  # the sim stamps in publishing order
