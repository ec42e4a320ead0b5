"""Robot configs load, and every kind of mistake is an error naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vla_policy_node.spec import ConfigError, Embodiment, load_embodiment

ROBOTS = Path(__file__).resolve().parents[2] / "config" / "robots"


@pytest.mark.parametrize("robot", sorted(p.stem for p in ROBOTS.glob("*.yaml")))
def test_shipped_robot_configs_load(robot: str) -> None:
    emb = load_embodiment(ROBOTS / f"{robot}.yaml")
    assert emb.name == robot
    assert emb.state_dim == len(emb.joints) + (1 if emb.gripper else 0)
    assert Embodiment.from_dict(emb.to_dict()) == emb


def test_franka_layout(franka: Embodiment) -> None:
    assert franka.joint_names[0] == "fr3_joint1" and len(franka.joints) == 7
    assert franka.action_names[-1] == "fr3_finger_joint1"
    assert franka.joints[3].upper == pytest.approx(-0.1518)


def test_cartesian_action_names() -> None:
    ur = load_embodiment(ROBOTS / "ur5e.yaml")
    assert ur.action_names[:6] == ("x", "y", "z", "roll", "pitch", "yaw")
    assert ur.action_space.cartesian


def _base() -> dict:
    return yaml.safe_load((ROBOTS / "sim_arm.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(speed=3), "speed: unknown key"),
        (lambda d: d["joints"][2].update(uper=1.0), "joints[2].uper: unknown key"),
        (lambda d: d["joints"][1].pop("upper"), "joints[1].upper: required field is missing"),
        (lambda d: d["joints"][0].update(upper=-5.0), "joints[0].upper: must exceed lower"),
        (lambda d: d["joints"][0].update(max_velocity=0.0), "joints[0].max_velocity: must be positive"),
        (lambda d: d["joints"][0].update(lower="low"), "joints[0].lower: expected a number"),
        (lambda d: d["cameras"][0].update(topic="/bad topic"), "cameras[0].topic: is not a valid ROS name"),
        (lambda d: d["cameras"][1].update(topic="/x//y"), "cameras[1].topic: is not a valid ROS name"),
        (lambda d: d["controller"].update(topic="2fast"), "controller.topic: is not a valid ROS name"),
        (lambda d: d["controller"].update(interface="telepathy"), "controller.interface: must be one of"),
        (
            lambda d: d["action_space"].update(type="ee_delta", ee_link="tool0"),
            "controller.interface: 'joint_trajectory' does not fit",
        ),
        (lambda d: d.update(cameras=[]), "cameras: at least one camera"),
        (lambda d: d["joints"].append(dict(d["joints"][0])), "joints: joint names must be unique"),
        (lambda d: d["gripper"].update(name="joint1"), "gripper.name: must differ"),
        (lambda d: d["rates"].update(control_hz=-1), "rates.control_hz: must be positive"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, mutate, field: str) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        load_embodiment(_write(tmp_path, data))
    assert field in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_embodiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("joints: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_embodiment(bad)


def test_bad_yaml_error_is_one_line_with_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\njoints: [\n")
    with pytest.raises(ConfigError) as err:
        load_embodiment(bad)
    message = str(err.value)
    assert "\n" not in message and "line 3, column 1" in message and str(bad) in message


def test_cached_names_follow_a_replaced_embodiment_and_do_not_change_equality(franka: Embodiment) -> None:
    import dataclasses
    import pickle

    assert franka.joint_names is franka.joint_names  # computed once
    fewer = dataclasses.replace(franka, cameras=franka.cameras[:1], gripper=None)
    assert fewer.camera_names == (franka.cameras[0].name,) and fewer.camera_names != franka.camera_names
    assert fewer.state_names == franka.joint_names and fewer.state_dim == len(franka.joints)
    fresh = Embodiment.from_dict(franka.to_dict())  # no cache yet
    assert fresh == franka and hash(fresh) == hash(franka)
    assert "joint_names" not in franka.to_dict() and pickle.loads(pickle.dumps(franka)) == franka
