"""rviz configs match their robot YAML (frame, camera topics) and the topics our nodes use; vla_bringup installs
every launch and config file."""

from __future__ import annotations

import inspect
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from vla_policy_node.msgs.markers import encode_path_markers
from vla_policy_node.nodes.ghost_state_publisher import DEFAULTS as GHOST_DEFAULTS
from vla_policy_node.spec import load_embodiment

REPO = Path(__file__).resolve().parents[2]
ROBOTS = sorted(p.stem for p in (REPO / "config" / "robots").glob("*.yaml"))
RVIZ_DISPLAYS = {"Grid", "RobotModel", "MarkerArray", "TF", "Image"}


def _rviz(robot: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "rviz" / f"{robot}.rviz").read_text())


def _displays(config: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [d for d in config["Visualization Manager"]["Displays"] if d["Class"] == f"rviz_default_plugins/{kind}"]


@pytest.mark.parametrize("robot", ROBOTS)
def test_rviz_view_matches_the_robot_yaml(robot: str) -> None:
    embodiment = load_embodiment(REPO / "config" / "robots" / f"{robot}.yaml")
    config = _rviz(robot)
    assert {"Panels", "Visualization Manager", "Window Geometry"} <= set(config)
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == embodiment.base_frame
    displays = manager["Displays"]
    assert {d["Class"].removeprefix("rviz_default_plugins/") for d in displays} == RVIZ_DISPLAYS
    names = [d["Name"] for d in displays]
    assert len(set(names)) == len(names)
    image_topics = sorted(d["Topic"]["Value"] for d in _displays(config, "Image"))
    assert image_topics == sorted(c.topic for c in embodiment.cameras)
    for image in _displays(config, "Image"):
        assert image["Topic"]["Reliability Policy"] == "Best Effort"  # matches reliable and best-effort cameras
        assert image["Name"] in config["Window Geometry"]  # its panel has a place in the window


@pytest.mark.parametrize("robot", ROBOTS)
def test_rviz_reads_what_the_policy_and_ghost_publish(robot: str) -> None:
    config = _rviz(robot)
    (path,) = _displays(config, "MarkerArray")
    assert path["Topic"]["Value"] == "/vla/predicted_path"
    marker_namespace = inspect.signature(encode_path_markers).parameters["ns"].default
    assert path["Namespaces"] == {marker_namespace: True}
    models = {d["TF Prefix"]: d for d in _displays(config, "RobotModel")}
    assert set(models) == {"", GHOST_DEFAULTS["tf_prefix"]}  # the robot, and the ghost from ghost_state_publisher
    for model in models.values():
        topic = model["Description Topic"]
        assert topic["Value"] == GHOST_DEFAULTS["description_topic"] == "/robot_description"
        assert topic["Durability Policy"] == "Transient Local"  # robot_state_publisher latches it
    assert models[GHOST_DEFAULTS["tf_prefix"]]["Alpha"] < 1.0


def _bringup_setup_kwargs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run src/vla_bringup/setup.py with setuptools.setup captured (nothing is built or installed)."""
    captured: dict[str, Any] = {}
    fake = types.ModuleType("setuptools")
    fake.setup = lambda **kwargs: captured.update(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "setuptools", fake)
    setup_py = REPO / "src" / "vla_bringup" / "setup.py"
    monkeypatch.chdir(setup_py.parent)  # colcon runs setup.py from the package folder
    exec(compile(setup_py.read_text(), str(setup_py), "exec"), {"__file__": str(setup_py), "__name__": "__main__"})
    return captured


def test_bringup_installs_every_launch_and_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = _bringup_setup_kwargs(monkeypatch)
    assert kwargs["packages"] == ["vla_bringup"]  # launch_common is importable from the launch files
    installed: dict[str, str] = {}
    for destination, sources in kwargs["data_files"]:
        for source in sources:
            path = (REPO / "src" / "vla_bringup" / source).resolve()
            assert path.is_file(), source
            installed[path.relative_to(REPO).as_posix()] = destination
    expected = {
        path.relative_to(REPO).as_posix()
        for top in ("launch", "config")
        for path in (REPO / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected <= set(installed)
    assert {"launch/franka_fr3.launch.py", "launch/replay.launch.py", "config/mux.yaml",
            "config/rviz/ur5e.rviz", "config/robots/so101.yaml"} <= expected
    for relative in expected:  # share/vla_bringup keeps the repository layout, which launch_common relies on
        assert installed[relative] == f"share/vla_bringup/{os.path.dirname(relative)}"
