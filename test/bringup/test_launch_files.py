"""Launch files: valid Python, the documented arguments, and (run against stand-ins for launch/launch_ros) the
nodes, executables and parameters they would start."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from test.bringup.fake_launch import (
    REPO,
    SHARES,
    LaunchError,
    Started,
    fake_launch_modules,
    load_launch_file,
    run,
)
from test.ros_env import ros2_missing
from vla_policy_node.control.mux_file import load_mux_file
from vla_policy_node.spec import load_embodiment

LAUNCH = REPO / "launch"
COMMON = REPO / "src" / "vla_bringup" / "vla_bringup" / "launch_common.py"
ROBOTS = sorted(p.stem for p in (REPO / "config" / "robots").glob("*.yaml"))
NODE_PACKAGE_SETUP = REPO / "src" / "vla_policy_node" / "setup.py"
# console_scripts the node engineer adds with the policy and mux nodes; every other executable must exist now
PENDING_EXECUTABLES: set[str] = set()


def documented_arguments(section: str) -> dict[str, str]:
    """Argument -> default cell of a table in config/README.md under the heading that contains `section`."""
    text = (REPO / "config" / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n#", start + len(section))
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text[start:end if end > 0 else None], flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


ROBOT_ARGS = documented_arguments("### `<robot>.launch.py`")
REPLAY_ARGS = documented_arguments("### `replay.launch.py`")


def _declared_in(function: ast.FunctionDef) -> list[str]:
    return [node.args[0].value for node in ast.walk(function)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
            and node.args and isinstance(node.args[0], ast.Constant)]


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


# ----------------------------------------------------------------------------------------- static checks
def test_every_robot_has_a_launch_file_and_there_are_no_strays() -> None:
    assert sorted(p.name for p in LAUNCH.glob("*.launch.py")) == sorted([f"{r}.launch.py" for r in ROBOTS]
                                                                       + ["replay.launch.py"])


@pytest.mark.parametrize("path", sorted(LAUNCH.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_file_is_a_thin_call_into_launch_common(path: Path) -> None:
    source = path.read_text()
    compile(source, str(path), "exec")
    tree = ast.parse(source)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports if isinstance(i, ast.ImportFrom)] == [
        ("vla_bringup.launch_common", ["replay_launch_description" if path.stem == "replay.launch"
                                       else "robot_launch_description"])]
    generate = _functions(path)["generate_launch_description"]
    assert not generate.args.args
    calls = [n for n in ast.walk(generate) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    if path.name != "replay.launch.py":
        (call,) = calls
        assert call.func.id == "robot_launch_description"
        assert isinstance(call.args[0], ast.Constant) and call.args[0].value == path.name.removesuffix(".launch.py")
    assert not _declared_in(generate)  # arguments are declared in one place: launch_common


def test_launch_common_declares_exactly_the_documented_arguments() -> None:
    functions = _functions(COMMON)
    assert sorted(_declared_in(functions["robot_arguments"])) == sorted(ROBOT_ARGS)
    assert sorted(_declared_in(functions["replay_launch_description"])) == sorted(REPLAY_ARGS)


def test_the_strategy_argument_offers_the_policy_nodes_settings() -> None:
    """vla_bringup does not import the node's package: its copy of the strategy choices must not drift."""
    from vla_policy_node.control.deployment import STRATEGY_SETTINGS

    (assigned,) = [n.value for n in ast.parse(COMMON.read_text()).body if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", "") == "STRATEGY_SETTINGS"]
    assert ast.literal_eval(assigned) == STRATEGY_SETTINGS


# ------------------------------------------------------------------------------------ executed launches
# Against stand-ins for launch/launch_ros; where a real ROS 2 is sourced, test/ros2/ runs every launch file under
# `ros2 launch` instead, and the tests below that need the stand-ins skip.
needs_stand_ins = pytest.mark.skipif(not ros2_missing(), reason="real ROS 2 present: test/ros2 runs the launches")


@pytest.fixture(autouse=True, scope="module")
def launch_stand_ins() -> Iterator[None]:
    with fake_launch_modules():
        yield


@pytest.fixture
def rviz2_installed() -> Iterator[None]:
    SHARES["rviz2"] = REPO / "rviz2-stand-in"
    try:
        yield
    finally:
        del SHARES["rviz2"]


def launch(file: str, **overrides: str) -> tuple[dict[str, str], dict[str, Started]]:
    description = load_launch_file(LAUNCH / file).generate_launch_description()
    context, started = run(description, overrides)
    by_name = {p.name: p for p in started}
    assert len(by_name) == len(started), "two processes with one name"
    return context.configurations, by_name


def test_declared_arguments_match_the_documentation_with_defaults_and_descriptions() -> None:
    for file, documented in [*((f"{r}.launch.py", ROBOT_ARGS) for r in ROBOTS), ("replay.launch.py", REPLAY_ARGS)]:
        arguments = load_launch_file(LAUNCH / file).generate_launch_description().get_launch_arguments()
        assert [a.name for a in arguments] == list(documented), file
        for argument in arguments:
            assert argument.description, f"{file}: {argument.name} has no description"
            cell = documented[argument.name]
            assert (argument.default_value is None) == (cell == "required"), f"{file}: {argument.name}"
            literal = re.fullmatch(r"`([^`]*)`( \(.*\))?", cell)
            if literal and isinstance(argument.default_value, str) and "sim_arm" not in file:
                assert argument.default_value == literal.group(1).strip('"'), f"{file}: {argument.name}"
            if argument.choices and isinstance(argument.default_value, str):
                assert argument.default_value in argument.choices


@needs_stand_ins
@pytest.mark.parametrize("robot", ROBOTS)
def test_robot_launch_starts_policy_mux_ghost_and_rviz_with_typed_parameters(robot: str, rviz2_installed) -> None:
    config, started = launch(f"{robot}.launch.py", checkpoint="/models/vla", instruction="yes")
    embodiment = load_embodiment(REPO / "config" / "robots" / f"{robot}.yaml")
    driver = {"sim_arm_driver"} if robot == "sim_arm" else set()  # the simulator is the sim arm's driver
    assert set(started) == {"vla_policy", "vla_command_mux", "vla_ghost_state_publisher", "rviz2"} | driver
    if driver:
        assert started["sim_arm_driver"].executable == "sim_arm_driver"

    policy = started["vla_policy"]
    assert (policy.package, policy.executable) == ("vla_policy_node", "policy_node")
    robot_config = Path(policy.parameters["robot_config"])
    assert robot_config == REPO / "config" / "robots" / f"{robot}.yaml" and robot_config.is_file()
    assert policy.parameters == {
        "robot_config": str(robot_config),
        "checkpoint": "/models/vla",
        "instruction": "yes",  # a string, not YAML's boolean
        "dry_run": True,
        "controller_type": embodiment.controller.interface,
        "camera_topics": "",
        "remaps": "",
        "strategy": "auto",
        "device": "cpu" if robot == "sim_arm" else "cuda",
        "autostart": True,
        "use_sim_time": False,
    }

    mux = started["vla_command_mux"]
    assert (mux.package, mux.executable) == ("vla_policy_node", "command_mux_node")
    assert load_mux_file(mux.parameters["mux_config"]).config.locks  # the installed mux.yaml, valid
    assert mux.parameters["robot_config"] == str(robot_config)
    assert mux.parameters["controller_type"] == embodiment.controller.interface
    assert mux.parameters["use_sim_time"] is False

    rviz = started["rviz2"]
    assert (rviz.package, rviz.executable, rviz.arguments[0]) == ("rviz2", "rviz2", "-d")
    rviz_file = Path(rviz.arguments[1])
    assert rviz_file == REPO / "config" / "rviz" / f"{robot}.rviz" and rviz_file.is_file()
    assert started["vla_ghost_state_publisher"].executable == "ghost_state_publisher"
    assert config["dry_run"] == "true"


@needs_stand_ins
def test_rviz_defaults_to_off_without_rviz2_and_refuses_before_any_node() -> None:
    config, started = launch("sim_arm.launch.py", checkpoint="c")
    assert config["rviz"] == "false" and "rviz2" not in started and "vla_ghost_state_publisher" not in started
    with pytest.raises(LaunchError, match="rviz2"):  # raised before the first node: nothing was started
        launch("sim_arm.launch.py", checkpoint="c", rviz="true")


@needs_stand_ins
def test_switches_and_overrides() -> None:
    _, started = launch("franka_fr3.launch.py", checkpoint="c", rviz="false", mux="false", dry_run="false",
                        use_sim_time="true", controller_type="forward_command", device="cuda:1")
    assert set(started) == {"vla_policy"}
    params = started["vla_policy"].parameters
    assert params["dry_run"] is False and params["use_sim_time"] is True
    assert (params["controller_type"], params["device"]) == ("forward_command", "cuda:1")


@needs_stand_ins
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "missing required argument 'checkpoint'"),
        ({"checkpoint": "c", "controller_type": "velocity"}, "argument 'controller_type' got 'velocity'"),
        ({"checkpoint": "c", "dry_run": "maybe"}, "argument 'dry_run' got 'maybe'"),
    ],
)
def test_launch_refuses_what_ros2_launch_refuses(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        launch("ur5e.launch.py", **overrides)


@needs_stand_ins
def test_replay_plays_the_bag_with_clock_and_runs_the_robot_on_sim_time() -> None:
    config, started = launch("replay.launch.py", bag="/data/run1", robot="franka_fr3", checkpoint="c",
                             use_sim_time="false", rviz="false")
    assert config["use_sim_time"] == "true"
    assert started["bag_play"].cmd == ["ros2", "bag", "play", "/data/run1", "--clock", "200", "--rate", "1.0"]
    assert set(started) == {"bag_play", "vla_policy", "vla_command_mux"}
    for name in ("vla_policy", "vla_command_mux"):
        assert started[name].parameters["use_sim_time"] is True  # forced, whatever the command line said
    assert started["vla_policy"].parameters["robot_config"].endswith("franka_fr3.yaml")
    assert started["vla_policy"].parameters["dry_run"] is True
    with pytest.raises(LaunchError, match="missing required argument 'bag'"):
        launch("replay.launch.py", checkpoint="c")
    with pytest.raises(LaunchError, match="argument 'robot' got 'pr2'"):
        launch("replay.launch.py", bag="b", robot="pr2", checkpoint="c")
    _, started = launch("replay.launch.py", bag="/data/run1", checkpoint="c")  # default robot: sim_arm
    assert "sim_arm_driver" not in started  # the bag is the robot: no live simulator beside it


@needs_stand_ins
def test_every_started_executable_is_installed() -> None:
    tree = ast.parse(NODE_PACKAGE_SETUP.read_text())
    scripts = {
        entry.value.split("=")[0].strip()
        for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
        for entry in [node] if re.fullmatch(r"[\w]+ = [\w.]+:\w+", node.value)
    }
    assert {"realsense_camera_node", "ghost_state_publisher"} <= scripts
    _, started = launch("so101.launch.py", checkpoint="c")
    ours = {p.executable for p in started.values() if p.package == "vla_policy_node"}
    assert ours - scripts <= PENDING_EXECUTABLES, f"not in {NODE_PACKAGE_SETUP.name}: {ours - scripts}"
    # the console scripts land where `ros2 run` / launch_ros look for a package's executables
    assert "install_scripts=$base/lib/vla_policy_node" in (NODE_PACKAGE_SETUP.parent / "setup.cfg").read_text()


def test_controller_default_comes_from_the_robot_yaml() -> None:
    for robot in ROBOTS:
        arguments = load_launch_file(LAUNCH / f"{robot}.launch.py").generate_launch_description().get_launch_arguments()
        default = {a.name: a.default_value for a in arguments}["controller_type"]
        raw = yaml.safe_load((REPO / "config" / "robots" / f"{robot}.yaml").read_text())
        assert default == raw["controller"]["interface"]
