"""`--transport dds` nodes (pure cyclonedds, ROS not sourced in their environment) and rclpy nodes in one ROS
graph: `ros2 node list`, topics and latched topics both ways, services both ways, `ros2 param` against a DDS node
answering exactly as against the same node on rclpy, and both logging to /rosout.

One graph per module: a DDS fake arm (FR3), the command mux once over DDS and once over rclpy (two names), and
this process's rclpy node."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test.ros2.conftest import REPO, NodeRun, SpunNode, Workspace, dds_env, publisher, ros2_cli, subscribe, wait_until

FR3 = REPO / "config" / "robots" / "franka_fr3.yaml"
MUX = REPO / "config" / "mux.yaml"  # explicit: the default is the installed one, found through ROS's ament index
DDS_MUX, RCLPY_MUX = "vla_command_mux_dds", "vla_command_mux_rclpy"
READY = {"arm": "commands from", "dds_mux": "running; Ctrl-C to stop", "rclpy_mux": "running; Ctrl-C to stop"}
STARTUP = 120.0  # s: nodes importing numpy/cyclonedds/rclpy and discovering each other on a loaded machine


def _bool():
    from std_msgs.msg import Bool

    return Bool


class LatchedBool:
    """The test's latched std_msgs/Bool publisher, remembering what it last published (a repeat of it changes
    nothing at the subscriber but still reaches its callback)."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.value: bool | None = None

    def publish(self, value: bool) -> None:
        self.value = value
        self.handle.publish(_bool()(data=value))


class Collected:
    def __init__(self) -> None:
        self.items: list = []
        self.lock = threading.Lock()

    def __call__(self, msg) -> None:
        with self.lock:
            self.items.append((time.monotonic(), msg))

    def since(self, t: float) -> list:
        with self.lock:
            return [m for stamp, m in self.items if stamp >= t]


@pytest.fixture(scope="module")
def graph(workspace: Workspace, ros_env: dict[str, str], rclpy_node: SpunNode, tmp_path_factory):
    """Start the nodes; cameras_enabled is published latched (false) from rclpy *before* the DDS arm exists."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    node = rclpy_node.node
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    cameras_enabled = LatchedBool(publisher(node, _bool(), "/fake_arm_driver/cameras_enabled", latched))
    cameras_enabled.publish(False)
    logs = tmp_path_factory.mktemp("interop")
    python = str(workspace.root / ".venv" / "bin" / "python")
    pure = dds_env(ros_env)
    runs = {
        "arm": NodeRun([python, "-m", "vla_policy_node.nodes.fake_arm_driver", "--transport", "dds",
                        "--robot-config", str(FR3)], pure, logs / "arm.log", "fake_arm_driver (dds)"),
        "dds_mux": NodeRun([python, "-m", "vla_policy_node.nodes.command_mux_node", "--transport", "dds",
                            "--robot-config", str(FR3), "--mux-config", str(MUX), "--node-name", DDS_MUX], pure,
                           logs / "dds_mux.log", "command_mux_node (dds)"),
        "rclpy_mux": NodeRun([python, "-m", "vla_policy_node.nodes.command_mux_node", "--transport", "rclpy",
                              "--robot-config", str(FR3), "--mux-config", str(MUX), "--node-name", RCLPY_MUX],
                             ros_env,
                             logs / "rclpy_mux.log", "command_mux_node (rclpy)"),
    }
    try:
        for name, run in runs.items():
            ready = READY[name]
            wait_until(lambda run=run, ready=ready: ready in run.text() or not run.alive(), STARTUP,
                       f"{run.name} to start")
            assert run.alive(), run.tail()
        expected = {"fake_arm_driver", DDS_MUX, RCLPY_MUX}
        wait_until(lambda: expected <= {n for n, _ in node.get_node_names_and_namespaces()}, STARTUP,
                   f"nodes {expected} in the graph")
        yield runs, cameras_enabled
    finally:
        codes = {name: run.stop() for name, run in runs.items()}
        bad = {name: code for name, code in codes.items() if code not in (0, -2)}
        assert not bad, "\n".join(runs[name].tail() for name in bad)
        for run in runs.values():
            assert "Traceback" not in run.text(), run.tail()


def _ros2_until(ros_env: dict[str, str], args: tuple[str, ...], wanted: set[str], timeout: float) -> str:
    """`ros2 <args>` re-run until its output names everything in `wanted` (discovery is eventually consistent:
    on a loaded machine one CLI call's discovery window can end before a node's endpoints arrive); the last
    output in the failure."""
    outputs = [""]

    def shows_all() -> bool:
        outputs[0] = ros2_cli(ros_env, *args)
        return wanted <= {token.rstrip(":") for token in outputs[0].split()}  # `node info`: "  /topic: type"

    try:
        wait_until(shows_all, timeout, f"`ros2 {' '.join(args)}` to show {sorted(wanted)}", poll=1.0)
    except AssertionError as error:
        raise AssertionError(f"{error}; last output:\n{outputs[0]}") from None
    return outputs[0]


def test_ros2_node_list_shows_the_dds_nodes(graph, ros_env) -> None:
    _ros2_until(ros_env, ("node", "list"), {"/fake_arm_driver", f"/{DDS_MUX}", f"/{RCLPY_MUX}"}, 60.0)
    _ros2_until(ros_env, ("node", "info", f"/{DDS_MUX}"),
                {"/vla/mux_status", f"/{DDS_MUX}/reset_estop", f"/{DDS_MUX}/set_parameters", "/rosout"}, 60.0)


def test_topics_and_latched_topics_both_ways(graph, rclpy_node: SpunNode) -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from vla_policy_node.spec import load_embodiment

    _, cameras_enabled = graph
    node = rclpy_node.node
    fr3 = load_embodiment(FR3)
    joints, images, description = Collected(), Collected(), Collected()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    subs = [subscribe(node, JointState, fr3.joint_states.topic, joints, qos_profile_sensor_data),
            subscribe(node, Image, fr3.cameras[0].topic, images, qos_profile_sensor_data)]
    try:
        wait_until(lambda: len(joints.items) >= 20, 30.0, "joint states from the DDS arm (DDS -> rclpy)")
        assert not images.items, "the DDS arm took the latched cameras_enabled=false published before it started"
        # a late joiner gets the DDS arm's latched /robot_description
        subs.append(subscribe(node, String, "/robot_description", description, latched))
        wait_until(lambda: description.items, 30.0, "the latched /robot_description (DDS -> late rclpy subscriber)")
        assert "<robot" in description.items[0][1].data
        cameras_enabled.publish(True)
        wait_until(lambda: len(images.items) >= 3, 30.0, "camera frames after cameras_enabled=true")
        frame = images.items[-1][1]
        assert (frame.height, frame.width, frame.encoding) == (fr3.cameras[0].height, fr3.cameras[0].width, "rgb8")
        # rclpy -> DDS: a trajectory on the controller topic moves the fake arm
        command = publisher(node, JointTrajectory, fr3.controller.topic, 10)
        start = list(joints.items[-1][1].position[:7])
        goal = [q + 0.2 for q in start]
        message = JointTrajectory(joint_names=list(fr3.joint_names),
                                  points=[JointTrajectoryPoint(positions=goal)])
        sent = time.monotonic()

        def arrived() -> bool:
            command.publish(message)
            latest = joints.since(sent)
            return bool(latest) and abs(latest[-1].position[0] - goal[0]) < 0.02

        wait_until(arrived, 30.0, "the DDS arm to follow an rclpy trajectory", poll=0.1)
        node.destroy_publisher(command)
    finally:
        for sub in subs:
            node.destroy_subscription(sub)


DDS_CLIENT = textwrap.dedent("""
    import sys
    from vla_policy_node.transport import DdsConfig, DdsTransport
    t = DdsTransport(DdsConfig(node_name="dds_client", parameter_services=False))
    client = t.client(sys.argv[1], "vla_msgs/srv/ResetEstop")
    reply = client.call(t.new_request("vla_msgs/srv/ResetEstop"), timeout=60.0)
    print(f"REPLY success={reply.success} message={reply.message}")
    t.close()
""")


def test_services_both_ways(graph, workspace: Workspace, ros_env) -> None:
    # an rclpy client (`ros2 service call`) -> the DDS node's service
    called = ros2_cli(ros_env, "service", "call", f"/{DDS_MUX}/reset_estop", "vla_msgs/srv/ResetEstop", timeout=120)
    assert "success=True" in called and "e-stop" in called, called
    # a DDS client (ROS not sourced) -> the rclpy node's service
    result = subprocess.run([str(workspace.root / ".venv/bin/python"), "-c", DDS_CLIENT, f"/{RCLPY_MUX}/reset_estop"],
                            env=dds_env(ros_env), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "REPLY success=True message=" in result.stdout and "e-stop" in result.stdout, (
        result.stdout + result.stderr)


PARAMETER_FILE = """\
/**:
  ros__parameters:
    status_hz: 500.0
    velocity_scale: 0.5
    urdf: 5
    no_such_parameter: 1
    start_type_description_service: false
"""


def param_session(env: dict[str, str], node_name: str, parameter_file: Path) -> dict[str, str]:
    """The same `ros2 param` commands against one node; their outputs (stdout + stderr) by command."""
    node = f"/{node_name}"
    commands = {
        "list": ("param", "list", node),
        "describe": ("param", "describe", node, "robot_config", "mux_config", "controller_type",
                     "controller_topic", "urdf", "status_hz", "velocity_scale", "use_sim_time",
                     "start_type_description_service"),
        "get": ("param", "get", node, "velocity_scale"),
        "set live": ("param", "set", node, "status_hz", "5.0"),
        "set start-up only": ("param", "set", node, "robot_config", "/elsewhere.yaml"),
        # out of range, stricter (applied), wrong type, undeclared, read-only: one set_parameters call
        "load": ("param", "load", node, str(parameter_file)),
        "set looser": ("param", "set", node, "velocity_scale", "0.9"),
        "dump": ("param", "dump", node),
    }

    def run(args: tuple[str, ...]) -> str:
        result = subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=120)
        return result.stdout + result.stderr

    return {name: run(args) for name, args in commands.items()}


def test_ros2_param_against_a_dds_node_answers_as_against_rclpy(graph, ros_env, tmp_path) -> None:
    parameter_file = tmp_path / "parameters.yaml"
    parameter_file.write_text(PARAMETER_FILE)
    with ThreadPoolExecutor(2) as pool:
        dds, rclpy_ = pool.map(lambda name: param_session(ros_env, name, parameter_file), (DDS_MUX, RCLPY_MUX))
    for command in dds:
        if command == "dump":  # same values, except rclpy's type description service, which DDS nodes lack
            continue
        assert dds[command] == rclpy_[command].replace(RCLPY_MUX, DDS_MUX), (
            f"`ros2 {command}` differs:\n--- dds\n{dds[command]}\n--- rclpy\n{rclpy_[command]}")
    assert "Set parameter successful" in dds["set live"]
    assert "read once at start-up" in dds["set start-up only"]
    loaded = dds["load"]
    assert "Set parameter status_hz failed: Parameter status_hz out of range" in loaded
    assert "Set parameter velocity_scale successful" in loaded
    assert "Set parameter urdf failed: Wrong parameter type" in loaded
    assert "Set parameter no_such_parameter failed: Invalid access to undeclared parameter(s)" in loaded
    assert "Set parameter start_type_description_service failed: Trying to set a read-only parameter" in loaded
    assert "would loosen a limit" in dds["set looser"]
    assert "Min value: 0.01" in dds["describe"] and "while running only lower" in dds["describe"]
    assert "Double value is: 1.0" in dds["get"]  # before the sets

    def values(dump: str) -> dict[str, str]:
        return dict(re.findall(r"^\s+(\w+): (.*)$", dump, flags=re.MULTILINE))

    dds_values, rclpy_values = values(dds["dump"]), values(rclpy_["dump"])
    assert dds_values.pop("start_type_description_service") == "false"
    assert rclpy_values.pop("start_type_description_service") == "true"
    assert dds_values == rclpy_values and dds_values["status_hz"] == "5.0" and dds_values["velocity_scale"] == "0.5"


def rcl_rosout_qos():
    """rcl_qos_profile_rosout_default (rcl/logging_rosout.c): what every rclpy node's /rosout writer uses."""
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL, lifespan=Duration(seconds=10))


def test_dds_and_rclpy_nodes_log_to_rosout(graph, rclpy_node: SpunNode, ros_env) -> None:
    """Each node's /rosout writer, the DDS ones with rcl's QoS; then lines the nodes log *after* this test's
    subscription matched their writers (a reset_estop call on each mux, a repeat of the arm's latched
    cameras_enabled) arrive on /rosout under each node's name. Event-driven: start-up lines are logged before any
    subscriber can be known to have matched, and rcl keeps /rosout history only 10 s, so on a loaded machine a
    subscriber may never see them; a triggered line it must see."""
    from rcl_interfaces.msg import Log

    node = rclpy_node.node
    cameras_enabled = graph[1]
    muxes = (DDS_MUX, RCLPY_MUX)
    writers = {"fake_arm_driver", *muxes}
    logs = Collected()
    subscription = subscribe(node, Log, "/rosout", logs, rcl_rosout_qos())

    def rosout_writers() -> dict[str, object]:
        return {i.node_name: i.qos_profile for i in node.get_publishers_info_by_topic("/rosout")}

    def logged(name: str, text: str) -> list:
        return [m for m in logs.since(0.0) if m.name == name and text in m.msg]

    triggers = {name: "reset_estop: " for name in muxes} | {"fake_arm_driver": "cameras "}
    try:
        wait_until(lambda: writers <= set(rosout_writers()), STARTUP, f"the /rosout writers of {sorted(writers)}")
        qos = rosout_writers()
        reference = rcl_rosout_qos()
        for name in writers:  # what discovery reports of each writer: rcl's profile, the DDS nodes' too
            seen = qos[name]
            assert (seen.reliability, seen.durability, seen.lifespan) == (
                reference.reliability, reference.durability, reference.lifespan), f"{name}: {seen}"
        # Trigger the lines; a trigger is repeated only while its line has not arrived (the writer's side of the
        # match may complete after ours), each round after the replies (`ros2 service call`: vla_msgs is not
        # importable in this process).
        deadline = time.monotonic() + STARTUP
        while not all(logged(name, text) for name, text in triggers.items()):
            assert time.monotonic() < deadline, (
                f"no triggered line on /rosout from {[n for n, t in triggers.items() if not logged(n, t)]}; "
                f"seen: {[(m.name, m.msg) for m in logs.since(0.0)][-20:]}")
            if not logged("fake_arm_driver", triggers["fake_arm_driver"]):
                cameras_enabled.publish(bool(cameras_enabled.value))  # same value: a log line, no change
            missing = [name for name in muxes if not logged(name, triggers[name])]
            with ThreadPoolExecutor(2) as pool:
                replies = list(pool.map(lambda name: ros2_cli(ros_env, "service", "call", f"/{name}/reset_estop",
                                                              "vla_msgs/srv/ResetEstop", timeout=120), missing))
            assert all("success=True" in reply for reply in replies), replies
            round_end = time.monotonic() + 5.0
            while time.monotonic() < round_end and not all(logged(n, t) for n, t in triggers.items()):
                time.sleep(0.05)
    finally:
        node.destroy_subscription(subscription)
    for name in muxes:  # the same record, from Python logging, over either transport
        line = logged(name, triggers[name])[0]
        assert line.level == Log.WARN and line.file.endswith("mux_runtime.py"), line
        assert line.function == "_serve_reset_estop", line
    arm_line = logged("fake_arm_driver", triggers["fake_arm_driver"])[0]
    assert arm_line.level == Log.INFO and arm_line.msg in ("cameras on", "cameras off"), arm_line
    assert arm_line.file.endswith("fake_arm_driver.py") and arm_line.function == "on_cameras_enabled", arm_line


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
