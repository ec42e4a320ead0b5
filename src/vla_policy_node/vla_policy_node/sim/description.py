"""The simulated arm as URDF, generated from the compiled MuJoCo model: what sim_arm_driver publishes on
/robot_description for the policy node's path markers, the ghost and rviz.

Why from the compiled model: the URDF must be the arm MuJoCo simulates. Body poses, joint axes and ranges,
actuator force limits, the tool site and the geoms are read from `MjModel`, so a change to `scene.py` reaches
the URDF with no second copy of the numbers to drift.

The tree: `base_frame` (the robot config's, "world") -> fixed `base_joint` -> `base` -> joint1..joint6 ->
link1..link6 -> fixed `tool_joint` -> `tool` (the TOOL_SITE frame, so `default_tip` ends the arm there), and
the finger slides under link6. Links are the MuJoCo bodies and joints the MuJoCo joints, with their names and
frames (every joint sits at its body's origin; anything else is refused rather than mis-converted). Visuals:
the geoms in their colors, a capsule as a cylinder with two spheres (URDF has no capsule).

`gripper`: the robot config's gripper state name. The driver reports the finger opening under it, so the first
finger's joint takes that name and the other fingers mimic it: robot_state_publisher and the ghost then move
the fingers from /joint_states and /vla/predicted_joint_states, which never name `finger_left`.
`target`: the target-state variant reports the task's reach point as joints `target_x|y|z`; they become
prismatic x, y, z joints from the base frame to a `target` link, so every joint of that robot config is in the
URDF (RobotModel's `default_tip(model, joint_names)` refuses a URDF without them) and rviz shows the point.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import mujoco
import numpy as np

from vla_policy_node.kinematics.rotation import rpy_from_quat
from vla_policy_node.sim.scene import TOOL_SITE

ROOT_BODY = "base"
TOOL_LINK = "tool"
TARGET_LINK = "target"


class TargetJoint(NamedTuple):
    """One coordinate of the reach point reported as a joint state: prismatic along base-frame axis 0, 1 or 2."""

    name: str
    axis: int
    lower: float
    upper: float


def _text(values: Sequence[float] | np.ndarray, digits: int = 9) -> str:
    """Numbers as URDF writes them; float noise below 1e-12 (cos(pi/2) and the like) written as 0."""
    return " ".join(f"{float(v) if abs(v) > 1e-12 else 0.0:.{digits}g}" for v in values)


def _origin(parent: ET.Element, pos: Sequence[float] | np.ndarray, quat: Sequence[float] | np.ndarray) -> None:
    """<origin> of a MuJoCo pos + (w, x, y, z) quaternion, as URDF's xyz + fixed-axis rpy."""
    q = np.asarray(quat, dtype=np.float64)
    rpy = rpy_from_quat(tuple(q / np.linalg.norm(q)))  # type: ignore[arg-type]
    ET.SubElement(parent, "origin", xyz=_text(pos), rpy=_text(rpy))


def _joint(robot: ET.Element, name: str, kind: str, parent: str, child: str) -> ET.Element:
    joint = ET.SubElement(robot, "joint", name=name, type=kind)
    ET.SubElement(joint, "parent", link=parent)
    ET.SubElement(joint, "child", link=child)
    return joint


def _subtree(model: mujoco.MjModel, root: int) -> list[int]:
    """Body ids under `root` (itself first), parents before children (MuJoCo numbers bodies depth first)."""
    inside = {root}
    for body in range(root + 1, model.nbody):
        if int(model.body_parentid[body]) in inside:
            inside.add(body)
    return sorted(inside)


def _effort(model: mujoco.MjModel, joint: int) -> float:
    """The force (N or N m) the joint's actuator can apply; 0 when nothing actuates it."""
    for a in range(model.nu):
        if (model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and model.actuator_trnid[a, 0] == joint
                and model.actuator_forcelimited[a]):
            return float(np.max(np.abs(model.actuator_forcerange[a])) * abs(model.actuator_gear[a, 0]))
    return 0.0


def _visual(link: ET.Element, model: mujoco.MjModel, geom: int) -> None:
    """The geom as one or more <visual>s in its body's frame (= the link's frame)."""
    kind = int(model.geom_type[geom])
    size = model.geom_size[geom]
    name = model.geom(geom).name or f"{model.body(int(model.geom_bodyid[geom])).name}_geom{geom}"
    rgba = _text(model.geom_rgba[geom], digits=4)  # float32 in MuJoCo: 0.3 would read 0.300000012
    pos, quat = model.geom_pos[geom], model.geom_quat[geom]
    shapes: list[tuple[str, dict[str, str], np.ndarray]] = []
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        shapes.append(("box", {"size": _text(2 * size)}, pos))
    elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        shapes.append(("sphere", {"radius": _text(size[:1])}, pos))
    elif kind in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        shapes.append(("cylinder", {"radius": _text(size[:1]), "length": _text([2 * size[1]])}, pos))
        if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            rotation = np.zeros(9)
            mujoco.mju_quat2Mat(rotation, quat)
            axis = rotation.reshape(3, 3)[:, 2] * size[1]
            shapes += [("sphere", {"radius": _text(size[:1])}, pos + sign * axis) for sign in (-1.0, 1.0)]
    else:
        return  # meshes, planes, ...: the scene has none on the arm; a missing visual only hides a part in rviz
    for i, (shape, attributes, center) in enumerate(shapes):
        visual = ET.SubElement(link, "visual", name=name if i == 0 else f"{name}_{i}")
        _origin(visual, center, quat)
        ET.SubElement(ET.SubElement(visual, "geometry"), shape, **attributes)
        ET.SubElement(ET.SubElement(visual, "material", name=f"{name}_color"), "color", rgba=rgba)


def sim_arm_urdf(model: mujoco.MjModel, *, name: str = "sim_arm", base_frame: str = "world", gripper: str = "",
                 velocities: Mapping[str, float] | None = None,
                 target: Sequence[TargetJoint] = ()) -> str:
    """URDF text of the arm under body `base` of `model` (see the module docstring).

    velocities: joint name -> max velocity for the <limit>s (MuJoCo has none; the robot config does), 0 if
    absent. target: the reach point's coordinates that the robot config lists as joints (any of x, y, z).
    """
    velocities = velocities or {}
    axes = [t.axis for t in target]
    if len(set(axes)) != len(axes) or not set(axes) <= {0, 1, 2}:
        raise ValueError(f"target joints need distinct axes among 0, 1, 2 (x, y, z), got {list(target)}")
    root = model.body(ROOT_BODY).id
    if base_frame == ROOT_BODY:
        raise ValueError(f"base_frame {base_frame!r} is the arm's own base body; name the frame it stands in")
    robot = ET.Element("robot", name=name)
    ET.SubElement(robot, "link", name=base_frame)
    bodies = _subtree(model, root)
    fingers: list[str] = []
    for body in bodies:
        body_name = model.body(body).name
        link = ET.SubElement(robot, "link", name=body_name)
        for geom in range(model.ngeom):
            if model.geom_bodyid[geom] == body:
                _visual(link, model, geom)
        parent = base_frame if body == root else model.body(int(model.body_parentid[body])).name
        if model.body_jntnum[body] == 0:
            joint = _joint(robot, "base_joint" if body == root else f"{body_name}_fixed", "fixed", parent, body_name)
            _origin(joint, model.body_pos[body], model.body_quat[body])
            continue
        if model.body_jntnum[body] > 1:
            raise ValueError(f"body {body_name!r} has {model.body_jntnum[body]} joints; a URDF link has one")
        j = int(model.body_jntadr[body])
        joint_name, kind = model.joint(j).name, int(model.jnt_type[j])
        if kind not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
            raise ValueError(f"joint {joint_name!r}: only hinge and slide joints map to URDF joints")
        if np.any(np.abs(model.jnt_pos[j]) > 1e-12):
            raise ValueError(f"joint {joint_name!r} is not at its body's origin; URDF puts it at the link frame")
        urdf_type = "revolute" if kind == mujoco.mjtJoint.mjJNT_HINGE else "prismatic"
        limited = bool(model.jnt_limited[j])
        if urdf_type == "revolute" and not limited:
            urdf_type = "continuous"
        elif not limited:
            raise ValueError(f"slide joint {joint_name!r} has no range; a URDF prismatic joint needs one")
        mimic = ""
        if kind == mujoco.mjtJoint.mjJNT_SLIDE and gripper:  # a finger: all driven to the same opening
            fingers.append(joint_name)
            if len(fingers) == 1:
                joint_name = gripper
            else:
                mimic = gripper
        joint = _joint(robot, joint_name, urdf_type, parent, body_name)
        _origin(joint, model.body_pos[body], model.body_quat[body])
        ET.SubElement(joint, "axis", xyz=_text(model.jnt_axis[j]))
        limit = {"effort": _text([_effort(model, j)]), "velocity": _text([velocities.get(mimic or joint_name, 0.0)])}
        if limited:
            limit |= {"lower": _text(model.jnt_range[j, :1]), "upper": _text(model.jnt_range[j, 1:])}
        ET.SubElement(joint, "limit", **limit)
        if mimic:
            ET.SubElement(joint, "mimic", joint=mimic, multiplier="1", offset="0")
    site = model.site(TOOL_SITE).id
    if int(model.site_bodyid[site]) not in bodies:
        raise ValueError(f"site {TOOL_SITE!r} is not on the arm")
    ET.SubElement(robot, "link", name=TOOL_LINK)
    tool = _joint(robot, "tool_joint", "fixed", model.body(int(model.site_bodyid[site])).name, TOOL_LINK)
    _origin(tool, model.site_pos[site], model.site_quat[site])
    parent = base_frame
    for i, (joint_name, axis, lower, upper) in enumerate(target):
        child = TARGET_LINK if i == len(target) - 1 else f"{joint_name}_link"
        link = ET.SubElement(robot, "link", name=child)
        if child == TARGET_LINK:
            visual = ET.SubElement(link, "visual", name=TARGET_LINK)
            ET.SubElement(ET.SubElement(visual, "geometry"), "sphere", radius="0.01")
            ET.SubElement(ET.SubElement(visual, "material", name="target_color"), "color", rgba="1 0 1 0.8")
        joint = _joint(robot, joint_name, "prismatic", parent, child)
        ET.SubElement(joint, "axis", xyz=_text(np.eye(3)[axis]))
        ET.SubElement(joint, "limit", lower=_text([lower]), upper=_text([upper]), effort="0",
                      velocity=_text([velocities.get(joint_name, 0.0)]))
        parent = child
    ET.indent(robot)
    return ET.tostring(robot, encoding="unicode")

