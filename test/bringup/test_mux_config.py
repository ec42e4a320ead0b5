"""config/mux.yaml loads into the control runtime's MuxConfig and behaves as documented when driven."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from vla_policy_node.control.command import ArmTarget, CommandSpace
from vla_policy_node.control.mux import CommandMux
from vla_policy_node.control.mux_file import MuxFileError, load_mux_file, mux_file_from_dict
from vla_policy_node.spec import load_embodiment

REPO = Path(__file__).resolve().parents[2]
MUX_YAML = REPO / "config" / "mux.yaml"


def test_shipped_mux_yaml_maps_onto_mux_config() -> None:
    loaded = load_mux_file(MUX_YAML)
    raw = yaml.safe_load(MUX_YAML.read_text())
    config = loaded.config
    assert config.policy_priority == raw["inputs"]["policy"]["priority"]
    assert config.teleop_priority == raw["inputs"]["teleop"]["priority"]
    assert config.teleop_timeout == raw["inputs"]["teleop"]["timeout"]
    assert config.require_deadman is raw["inputs"]["teleop"]["deadman"]["required"]
    assert loaded.policy_timeout == raw["inputs"]["policy"]["timeout"]
    assert config.policy_priority < config.teleop_priority < min(lock.priority for lock in config.locks)
    estop = {lock.name: lock for lock in config.locks}["estop"]
    assert estop.latching
    assert loaded.topics.locks == {"estop": "/vla/estop"}
    assert loaded.topics.policy == "/vla/policy_command"
    assert loaded.topics.teleop.joint_command == "/vla/teleop/joint_command"


def _mux(robot: str = "sim_arm") -> CommandMux:
    embodiment = load_embodiment(REPO / "config" / "robots" / f"{robot}.yaml")
    space = CommandSpace.from_embodiment(embodiment)
    return CommandMux(load_mux_file(MUX_YAML).config, space, np.full(space.arm_dim, 2.0), 0.2)


def _select(mux: CommandMux, now: float) -> str:
    here = np.zeros(mux.space.arm_dim)
    return mux.select(now, np.full(mux.space.arm_dim, 0.01), 0.02, here, 0.02, False).source


def test_shipped_priorities_teleop_over_policy_estop_over_both_and_latching() -> None:
    mux = _mux()
    assert _select(mux, 0.0) == "policy"
    mux.on_teleop(ArmTarget(np.full(6, 0.02), 0.03), now=1.0)
    assert _select(mux, 1.0) == "teleop"
    mux.on_lock("estop", True, now=1.1)
    assert _select(mux, 1.1) == "hold"  # the e-stop blocks teleop as well
    mux.on_lock("estop", False, now=1.2)
    assert _select(mux, 1.2) == "hold"  # latched until reset
    assert mux.reset_estop(1.3)[0]
    assert _select(mux, 1.3) == "teleop"
    # handback: resume: after teleop lets go the policy waits for an explicit resume
    after = 1.3 + load_mux_file(MUX_YAML).config.teleop_timeout + 0.01
    assert _select(mux, after) == "hold" and mux.awaiting_resume
    assert _select(mux, after + 5.0) == "hold"
    mux.resume_policy()
    assert _select(mux, after + 5.01) == "policy"


def _data() -> dict:
    return yaml.safe_load(MUX_YAML.read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["inputs"]["teleop"].update(timout=1.0), r"inputs\.teleop\.timout: unknown key"),
        (lambda d: d["inputs"]["teleop"].update(timeout=0), r"inputs\.teleop\.timeout: must be positive"),
        (lambda d: d["inputs"]["policy"].pop("topic"), r"inputs\.policy\.topic: required field is missing"),
        (lambda d: d["inputs"]["policy"].update(priority=100.5), r"inputs\.policy\.priority: expected an integer"),
        (lambda d: d["inputs"]["policy"].update(priority=200), "policy priority must be below teleop priority"),
        (lambda d: d["locks"]["estop"].update(latching="yes"), r"locks\.estop\.latching: expected true/false"),
        (lambda d: d["locks"]["estop"].update(topic="/vla/e stop"), r"locks\.estop\.topic: not a valid ROS topic"),
        (lambda d: d["locks"].update(policy={"topic": "/x"}), "locks cannot be named policy/teleop/hold"),
        (lambda d: d["inputs"]["teleop"]["deadman"].update(timeout=-1), r"deadman\.timeout: must be positive"),
        (lambda d: d["handover"].update(speed_fraction=2.0), r"handover_speed_fraction must be in \(0, 1\]"),
        (lambda d: d.update(outputs={}), "outputs: unknown key"),
        (lambda d: d.update(locks=[]), "locks: expected a mapping"),
        (lambda d: d["inputs"]["teleop"].update(handback="later"), r"inputs\.teleop\.handback: expected one of"),
        (lambda d: d["inputs"]["teleop"].update(resume_topic="no topic"), r"inputs\.teleop\.resume_topic: not a"),
    ],
)
def test_mistakes_are_errors_that_name_the_field(edit, message: str) -> None:
    data = _data()
    edit(data)
    with pytest.raises(MuxFileError, match=message):
        mux_file_from_dict(data)


def test_deadman_required_needs_a_topic_and_file_errors_name_the_file(tmp_path: Path) -> None:
    data = _data()
    data["inputs"]["teleop"]["deadman"] = {"required": True}
    with pytest.raises(MuxFileError, match=r"deadman\.topic: required when deadman\.required is true"):
        mux_file_from_dict(data)
    data["inputs"]["teleop"]["deadman"]["topic"] = "/deadman"
    assert mux_file_from_dict(data).config.require_deadman
    path = tmp_path / "mux.yaml"
    path.write_text("inputs: [")
    with pytest.raises(MuxFileError, match=r"mux\.yaml: not valid YAML"):
        load_mux_file(path)
    with pytest.raises(MuxFileError, match="mux config not found"):
        load_mux_file(tmp_path / "missing.yaml")
