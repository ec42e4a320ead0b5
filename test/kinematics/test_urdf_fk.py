"""URDF forward kinematics against hand-computed poses and scipy's rotations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vla_policy_node.kinematics import UrdfError, default_tip, parse_urdf

L1, L2, L3 = 0.4, 0.3, 0.1

PLANAR = f"""<?xml version="1.0"?>
<robot name="planar">
  <link name="world"/><link name="base_link"/><link name="link1"/><link name="link2"/><link name="link3"/>
  <link name="tool"/><link name="camera"/>
  <joint name="mount" type="fixed"><parent link="world"/><child link="base_link"/>
    <origin xyz="1 2 0"/></joint>
  <joint name="j1" type="revolute"><parent link="base_link"/><child link="link1"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="j2" type="continuous"><parent link="link1"/><child link="link2"/>
    <origin xyz="{L1} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="j3" type="revolute"><parent link="link2"/><child link="link3"/>
    <origin xyz="{L2} 0 0"/><axis xyz="0 0 1"/><limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <joint name="tool_joint" type="fixed"><parent link="link3"/><child link="tool"/>
    <origin xyz="{L3} 0 0"/></joint>
  <joint name="camera_joint" type="fixed"><parent link="base_link"/><child link="camera"/>
    <origin xyz="0 0 1"/></joint>
</robot>
"""


def planar_tip(q1: float, q2: float, q3: float) -> tuple[float, float]:
    a, b, c = q1, q1 + q2, q1 + q2 + q3
    return (L1 * np.cos(a) + L2 * np.cos(b) + L3 * np.cos(c), L1 * np.sin(a) + L2 * np.sin(b) + L3 * np.sin(c))


def test_planar_arm_matches_hand_computed_positions() -> None:
    chain = parse_urdf(PLANAR).chain("base_link", "tool")
    assert chain.joint_names == ("j1", "j2", "j3")
    for q in [(0.0, 0.0, 0.0), (np.pi / 2, 0.0, 0.0), (0.3, -0.7, 1.1), (-2.0, 2.5, -0.4)]:
        pose = chain.fk(np.array(q))
        x, y = planar_tip(*q)
        np.testing.assert_allclose(pose[:3, 3], [x, y, 0.0], atol=1e-12)
        np.testing.assert_allclose(pose[:3, :3], Rotation.from_euler("z", sum(q)).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(chain.fk(np.zeros(3))[:3, 3], [L1 + L2 + L3, 0, 0])


def test_batched_positions_equal_single_fk_and_respect_base() -> None:
    rng = np.random.default_rng(0)
    model = parse_urdf(PLANAR)
    chunk = rng.uniform(-2, 2, size=(16, 3))
    chain = model.chain("base_link", "tool")
    positions = chain.positions(chunk)
    assert positions.shape == (16, 3)
    expected = np.array([[*planar_tip(*q), 0.0] for q in chunk])
    np.testing.assert_allclose(positions, expected, atol=1e-12)
    mount = np.array([1.0, 2.0, 0.0])
    np.testing.assert_allclose(model.chain("world", "tool").positions(chunk), expected + mount, atol=1e-12)
    # default base is the root link
    assert model.chain(tip="tool").base == "world"


def test_named_inputs_ignore_joints_outside_the_chain_and_reorder_columns() -> None:
    chain = parse_urdf(PLANAR).chain("base_link", "tool")
    q = {"j3": 0.2, "j1": 0.5, "j2": -0.1, "gripper": 0.04, "unrelated": 9.0}
    np.testing.assert_allclose(chain.fk(q)[:3, 3], [*planar_tip(0.5, -0.1, 0.2), 0.0], atol=1e-12)
    # chunk columns in another order with an extra gripper column
    chunk = np.array([[0.04, 0.2, -0.1, 0.5], [0.0, 0.0, 0.0, 0.0]])
    got = chain.positions(chunk, names=("gripper", "j3", "j2", "j1"))
    np.testing.assert_allclose(got[0], [*planar_tip(0.5, -0.1, 0.2), 0.0], atol=1e-12)
    np.testing.assert_allclose(got[1], [L1 + L2 + L3, 0, 0], atol=1e-12)
    with pytest.raises(ValueError, match=r"no position given for chain joint\(s\) \['j2'\]"):
        chain.fk({"j1": 0.0, "j3": 0.0})
    with pytest.raises(ValueError, match="lack chain joint"):
        chain.positions(np.zeros((2, 2)), names=("j1", "j2"))
    with pytest.raises(ValueError, match="expected 3 joint positions"):
        chain.positions(np.zeros((4, 7)))


def test_chain_skips_branches_and_keeps_limits() -> None:
    chain = parse_urdf(PLANAR).chain("base_link", "tool")
    assert [j.name for j in chain.joints] == ["j1", "j2", "j3", "tool_joint"]
    np.testing.assert_array_equal(chain.lower, [-3, -np.inf, -2])
    np.testing.assert_array_equal(chain.upper, [3, np.inf, 2])
    camera = parse_urdf(PLANAR).chain("world", "camera")
    assert camera.n_joints == 0
    np.testing.assert_allclose(camera.fk(np.zeros(0))[:3, 3], [1, 2, 1])


PRISMATIC = """<robot name="slider">
  <link name="base"/><link name="carriage"/><link name="tip"/>
  <joint name="rail" type="prismatic"><parent link="base"/><child link="carriage"/>
    <origin xyz="0 0 0.1" rpy="0 0 1.5707963267948966"/><axis xyz="1 0 0"/>
    <limit lower="0" upper="0.5" effort="1" velocity="1"/></joint>
  <joint name="tip_joint" type="fixed"><parent link="carriage"/><child link="tip"/><origin xyz="0.05 0 0"/></joint>
</robot>"""


def test_prismatic_joint_moves_along_its_rotated_axis() -> None:
    chain = parse_urdf(PRISMATIC).chain()
    assert chain.tip == "tip" and chain.joint_names == ("rail",)
    # joint frame is yawed 90 degrees: its x axis is the base's y axis
    np.testing.assert_allclose(chain.positions(np.array([[0.0], [0.3]])), [[0, 0.05, 0.1], [0, 0.35, 0.1]],
                               atol=1e-12)


def _numbers(values: np.ndarray) -> str:
    return " ".join(str(v) for v in values.tolist())


def _random_chain_urdf(rng: np.random.Generator, n: int) -> tuple[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    links = "".join(f'<link name="l{i}"/>' for i in range(n + 2))
    joints, specs = [], []
    for i in range(n):
        xyz, rpy = rng.uniform(-0.5, 0.5, 3), rng.uniform(-np.pi, np.pi, 3)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        specs.append((xyz, rpy, axis))
        joints.append(
            f'<joint name="j{i}" type="revolute"><parent link="l{i}"/><child link="l{i + 1}"/>'
            f'<origin xyz="{_numbers(xyz)}" rpy="{_numbers(rpy)}"/>'
            f'<axis xyz="{_numbers(axis)}"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>'
        )
    joints.append(f'<joint name="flange" type="fixed"><parent link="l{n}"/><child link="l{n + 1}"/>'
                  f'<origin xyz="0 0 0.1" rpy="0.1 0.2 0.3"/></joint>')
    return f'<robot name="random">{links}{"".join(joints)}</robot>', specs


def _homogeneous(rotation: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation
    if translation is not None:
        out[:3, 3] = translation
    return out


def test_rpy_origins_and_arbitrary_axes_match_scipy() -> None:
    rng = np.random.default_rng(42)
    text, specs = _random_chain_urdf(rng, 7)
    chain = parse_urdf(text).chain()
    chunk = rng.uniform(-3, 3, size=(16, 7))
    poses = chain.poses(chunk)
    for k, q in enumerate(chunk):
        expected = np.eye(4)
        for (xyz, rpy, axis), angle in zip(specs, q, strict=True):
            origin = _homogeneous(Rotation.from_euler("xyz", rpy).as_matrix(), xyz)  # URDF rpy: fixed axes x, y, z
            expected = expected @ origin @ _homogeneous(Rotation.from_rotvec(axis * angle).as_matrix())
        expected = expected @ _homogeneous(Rotation.from_euler("xyz", [0.1, 0.2, 0.3]).as_matrix(), [0, 0, 0.1])
        np.testing.assert_allclose(poses[k], expected, atol=1e-10)


MIMIC = """<robot name="gripper">
  <link name="palm"/><link name="left"/><link name="right"/>
  <joint name="finger" type="prismatic"><parent link="palm"/><child link="left"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="0.04" effort="1" velocity="1"/></joint>
  <joint name="finger_mimic" type="prismatic"><parent link="palm"/><child link="right"/><axis xyz="0 1 0"/>
    <mimic joint="finger" multiplier="-1" offset="0.01"/><limit lower="-0.04" upper="0" effort="1" velocity="1"/>
  </joint>
</robot>"""


def test_mimic_joint_follows_its_master_in_the_tree() -> None:
    model = parse_urdf(MIMIC)
    transforms = {joint.name: tf for joint, tf in model.link_transforms({"finger": 0.03})}
    np.testing.assert_allclose(transforms["finger"][:3, 3], [0, 0.03, 0])
    np.testing.assert_allclose(transforms["finger_mimic"][:3, 3], [0, -0.02, 0])
    # a chain through a mimic joint has no input for it
    chain = model.chain("palm", "right")
    assert chain.joint_names == ()
    np.testing.assert_allclose(chain.fk(np.zeros(0))[:3, 3], [0, 0.01, 0])


def test_link_transforms_cover_every_joint_with_missing_joints_at_zero() -> None:
    model = parse_urdf(PLANAR)
    transforms = {joint.name: (joint.parent, joint.child, tf) for joint, tf in model.link_transforms({"j2": 0.5})}
    assert set(transforms) == {"mount", "j1", "j2", "j3", "tool_joint", "camera_joint"}
    parent, child, tf = transforms["j2"]
    assert (parent, child) == ("link1", "link2")
    np.testing.assert_allclose(tf[:3, 3], [L1, 0, 0])
    np.testing.assert_allclose(tf[:3, :3], Rotation.from_euler("z", 0.5).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(transforms["j1"][2], np.eye(4))


FRANKA_LIKE = """<robot name="fr3">
  <link name="base"/><link name="fr3_link0"/>
  """ + "".join(f'<link name="fr3_link{i}"/>' for i in range(1, 9)) + """
  <link name="fr3_hand"/><link name="fr3_hand_tcp"/><link name="fr3_leftfinger"/><link name="fr3_rightfinger"/>
  <joint name="base_joint" type="fixed"><parent link="base"/><child link="fr3_link0"/></joint>
  """ + "".join(
    f'<joint name="fr3_joint{i}" type="revolute"><parent link="fr3_link{i - 1}"/><child link="fr3_link{i}"/>'
    f'<origin xyz="0 0 0.1"/><axis xyz="0 0 1"/></joint>' for i in range(1, 8)) + """
  <joint name="fr3_joint8" type="fixed"><parent link="fr3_link7"/><child link="fr3_link8"/></joint>
  <joint name="fr3_hand_joint" type="fixed"><parent link="fr3_link8"/><child link="fr3_hand"/></joint>
  <joint name="fr3_hand_tcp_joint" type="fixed"><parent link="fr3_hand"/><child link="fr3_hand_tcp"/>
    <origin xyz="0 0 0.1034"/></joint>
  <joint name="fr3_finger_joint1" type="prismatic"><parent link="fr3_hand"/><child link="fr3_leftfinger"/>
    <axis xyz="0 1 0"/></joint>
  <joint name="fr3_finger_joint2" type="prismatic"><parent link="fr3_hand"/><child link="fr3_rightfinger"/>
    <axis xyz="0 -1 0"/><mimic joint="fr3_finger_joint1"/></joint>
</robot>"""


def test_default_tip_is_the_tool_frame_past_the_last_arm_joint() -> None:
    model = parse_urdf(FRANKA_LIKE)
    assert default_tip(model) == "fr3_hand_tcp"
    assert default_tip(FRANKA_LIKE, joint_names=[f"fr3_joint{i}" for i in range(1, 6)]) == "fr3_link5"
    assert default_tip(PLANAR) == "tool"
    chain = model.chain("fr3_link0")
    assert chain.tip == "fr3_hand_tcp" and chain.n_joints == 7
    np.testing.assert_allclose(chain.fk(np.zeros(7))[:3, 3], [0, 0, 0.7 + 0.1034])
    with pytest.raises(UrdfError, match=r"joints \['elbow'\] are not in URDF"):
        default_tip(model, joint_names=["elbow"])


@pytest.mark.parametrize(
    ("base", "tip", "message"),
    [
        ("base_link", "gripper_tcp", r"unknown link 'gripper_tcp' in URDF 'planar' \(links: world, base_link"),
        ("nowhere", "tool", "unknown link 'nowhere'"),
        ("link2", "camera", "link 'link2' is not an ancestor of 'camera'"),
        ("tool", "base_link", "link 'tool' is not an ancestor of 'base_link'"),
    ],
)
def test_unknown_or_unrelated_links_are_clear_errors(base: str, tip: str, message: str) -> None:
    with pytest.raises(UrdfError, match=message):
        parse_urdf(PLANAR).chain(base, tip)


def _robot(body: str) -> str:
    return f'<robot name="bad"><link name="a"/><link name="b"/>{body}</robot>'


JOINT_AB = '<parent link="a"/><child link="b"/>'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<robot><link name='a'>", "not well-formed XML"),
        ("<sdf><link name='a'/></sdf>", "root element must be <robot>, got <sdf>"),
        ("<robot name='x'/>", "no <link> elements"),
        (_robot(f'<joint name="j" type="revolute">{JOINT_AB}<origin xyz="0 0"/></joint>'),
         "joint 'j' origin xyz: expected 3 finite numbers, got '0 0'"),
        (_robot(f'<joint name="j" type="revolute">{JOINT_AB}<origin rpy="0 x 0"/></joint>'),
         "joint 'j' origin rpy: expected 3 numbers"),
        (_robot(f'<joint name="j" type="ball">{JOINT_AB}</joint>'), "joint 'j': type 'ball' is not one of"),
        (_robot('<joint name="j" type="fixed"><parent link="a"/></joint>'), r"joint 'j': missing <child link=...>"),
        (_robot('<joint name="j" type="fixed"><parent link="a"/><child link="c"/></joint>'),
         "joint 'j': child link 'c' is not a <link>"),
        (_robot(f'<joint name="j" type="revolute">{JOINT_AB}<axis xyz="0 0 0"/></joint>'),
         "joint 'j': axis must not be zero"),
        (_robot(f'<joint type="fixed">{JOINT_AB}</joint>'), "a <joint> has no name"),
        (_robot(f'<joint name="j" type="fixed">{JOINT_AB}</joint><joint name="k" type="fixed">{JOINT_AB}</joint>'),
         "link 'b' has two parent joints: 'j' and 'k'"),
        (_robot(""), r"one root link, found roots \['a', 'b'\]"),
        (_robot(f'<joint name="j" type="revolute">{JOINT_AB}<mimic joint="m"/></joint>'),
         "joint 'j' mimics unknown joint 'm'"),
        (_robot(f'<joint name="j" type="revolute">{JOINT_AB}<limit lower="low"/></joint>'),
         "joint 'j' limit lower: expected 1 numbers"),
    ],
)
def test_malformed_urdf_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(UrdfError, match=message):
        parse_urdf(text)


def test_floating_joint_may_exist_but_not_in_a_chain(tmp_path) -> None:
    text = _robot(f'<joint name="free" type="floating">{JOINT_AB}</joint>')
    model = parse_urdf(text)
    with pytest.raises(UrdfError, match="joint 'free' is floating"):
        model.chain("a", "b")
    path = tmp_path / "robot.urdf"
    path.write_text(text.replace('type="floating"', 'type="bogus"'))
    from vla_policy_node.kinematics import load_urdf

    with pytest.raises(UrdfError, match=r"robot\.urdf: joint 'free': type 'bogus'"):
        load_urdf(path)
    with pytest.raises(UrdfError, match="URDF file not found"):
        load_urdf(tmp_path / "missing.urdf")
