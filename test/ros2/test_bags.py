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

from test.ros2.conftest import REPO, SHIPPED, NodeRun, SpunNode, Workspace, ros2_cli, subscribe, wait_until

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
    machine's load); then the driver stops. Bag directories by name."""
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


@pytest.mark.parametrize("storage", STORAGES)
def test_vla_record_bags_pass_ros2_bag_info_and_play(storage, recorded, ros_env, rclpy_node: SpunNode) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    bag = recorded[f"vla_{storage}"]
    info = ros2_cli(ros_env, "bag", "info", str(bag))
    assert f"Storage id:        {storage}" in info, info
    joint_line = next(line for line in info.splitlines() if "Topic: /joint_states " in line)
    recorded_count = int(joint_line.split("Count:")[1].split("|")[0])
    assert recorded_count > FRAMES, info  # joint states come at ten times the camera rate
    received: list[float] = []
    lock = threading.Lock()

    def on_joint_state(msg) -> None:
        with lock:
            received.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    node = rclpy_node.node
    subscription = subscribe(node, JointState, "/joint_states", on_joint_state, qos_profile_sensor_data)
    try:
        played = subprocess.run(["ros2", "bag", "play", str(bag), "--rate", "4.0",
                                 "--wait-for-all-acked", "0", "--delay", "1.0"], env=ros_env, capture_output=True,
                                text=True, timeout=120)
        assert played.returncode == 0, played.stdout + played.stderr
        wait_until(lambda: len(received) >= recorded_count // 2, 10.0, "the played joint states")
    finally:
        node.destroy_subscription(subscription)
    assert received == sorted(received)  # in recorded order
