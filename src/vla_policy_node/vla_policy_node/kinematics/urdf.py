"""URDF forward kinematics, numpy only: where a predicted joint chunk would put the end effector.

The policy node gets the URDF text from `/robot_description` (or a file), builds one `KinematicChain` from the
robot's base frame to its tool frame, and turns every predicted chunk [H, n] into tip positions [H, 3] for the
rviz path markers. No ROS, no KDL: a chain is compiled once into constant 4x4 blocks between its movable
joints, so evaluating a whole chunk is a handful of batched matrix products (a 16-step chunk of a 7-joint arm
takes tens of microseconds).

Supported joints: revolute, continuous, prismatic, fixed (floating/planar joints may exist in the tree but not
in a chain). `mimic` joints follow their master: `multiplier * q_master + offset`.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vla_policy_node.kinematics.rotation import axis_angle_matrix, rpy_matrix, skew_matrix

JointType = Literal["revolute", "continuous", "prismatic", "fixed", "floating", "planar"]
JOINT_TYPES: tuple[str, ...] = ("revolute", "continuous", "prismatic", "fixed", "floating", "planar")
MOVABLE: tuple[str, ...] = ("revolute", "continuous", "prismatic")
ROTATIONAL: tuple[str, ...] = ("revolute", "continuous")


class UrdfError(ValueError):
    """A URDF that cannot be parsed, or a chain it does not contain; the message names the element."""


@dataclass(frozen=True)
class Mimic:
    joint: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, eq=False)
class Joint:
    """One URDF joint. `origin` is the 4x4 parent-link -> joint-frame transform; `axis` is a unit vector."""

    name: str
    type: JointType
    parent: str
    child: str
    origin: np.ndarray = field(repr=False)
    axis: np.ndarray = field(repr=False)
    lower: float | None = None
    upper: float | None = None
    mimic: Mimic | None = None

    @property
    def movable(self) -> bool:
        return self.type in MOVABLE

    def motion(self, value: float) -> np.ndarray:
        """4x4 joint-frame -> child-link transform at joint position `value` (identity for fixed joints)."""
        out = np.eye(4)
        if self.type in ROTATIONAL:
            out[:3, :3] = axis_angle_matrix(self.axis, value)
        elif self.type == "prismatic":
            out[:3, 3] = self.axis * value
        return out

    def transform(self, value: float) -> np.ndarray:
        """4x4 parent-link -> child-link transform at joint position `value`."""
        return self.origin @ self.motion(value)


# ------------------------------------------------------------------------------------------------ parsing
def _floats(text: str | None, count: int, default: tuple[float, ...], where: str) -> tuple[float, ...]:
    if text is None:
        return default
    parts = text.split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UrdfError(f"{where}: expected {count} numbers, got {text!r}") from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise UrdfError(f"{where}: expected {count} finite numbers, got {text!r}")
    return values


def _optional_float(element: ET.Element | None, name: str, where: str) -> float | None:
    if element is None or element.get(name) is None:
        return None
    return _floats(element.get(name), 1, (0.0,), f"{where} {name}")[0]


def _parse_joint(element: ET.Element, links: set[str]) -> Joint:
    name = element.get("name")
    if not name:
        raise UrdfError("a <joint> has no name attribute")
    where = f"joint {name!r}"
    joint_type = element.get("type")
    if joint_type not in JOINT_TYPES:
        raise UrdfError(f"{where}: type {joint_type!r} is not one of {list(JOINT_TYPES)}")
    ends = {}
    for tag in ("parent", "child"):
        node = element.find(tag)
        link = node.get("link") if node is not None else None
        if not link:
            raise UrdfError(f"{where}: missing <{tag} link=...>")
        if link not in links:
            raise UrdfError(f"{where}: {tag} link {link!r} is not a <link> of this robot")
        ends[tag] = link
    origin_el = element.find("origin")
    xyz = _floats(origin_el.get("xyz") if origin_el is not None else None, 3, (0.0, 0.0, 0.0), f"{where} origin xyz")
    rpy = _floats(origin_el.get("rpy") if origin_el is not None else None, 3, (0.0, 0.0, 0.0), f"{where} origin rpy")
    origin = np.eye(4)
    origin[:3, :3] = rpy_matrix(*rpy)
    origin[:3, 3] = xyz
    axis_el = element.find("axis")
    axis = np.array(_floats(axis_el.get("xyz") if axis_el is not None else None, 3, (1.0, 0.0, 0.0), f"{where} axis"))
    norm = float(np.linalg.norm(axis))
    if joint_type in MOVABLE and norm < 1e-12:
        raise UrdfError(f"{where}: axis must not be zero")
    axis = axis / norm if norm > 0 else axis
    limit = element.find("limit")
    mimic_el = element.find("mimic")
    mimic = None
    if mimic_el is not None:
        master = mimic_el.get("joint")
        if not master:
            raise UrdfError(f"{where}: <mimic> needs a joint attribute")
        multiplier = _optional_float(mimic_el, "multiplier", f"{where} mimic")
        offset = _optional_float(mimic_el, "offset", f"{where} mimic")
        mimic = Mimic(master, 1.0 if multiplier is None else multiplier, 0.0 if offset is None else offset)
    return Joint(
        name=name,
        type=joint_type,  # type: ignore[arg-type]
        parent=ends["parent"],
        child=ends["child"],
        origin=origin,
        axis=axis,
        lower=_optional_float(limit, "lower", f"{where} limit"),
        upper=_optional_float(limit, "upper", f"{where} limit"),
        mimic=mimic,
    )


@dataclass(frozen=True, eq=False)
class UrdfModel:
    """The kinematic tree of a URDF: links, joints by name, the joint above each child link, the root link."""

    name: str
    links: tuple[str, ...]
    joints: Mapping[str, Joint]
    parent_joint: Mapping[str, str]  # child link -> name of the joint above it
    root: str

    @classmethod
    def from_string(cls, text: str) -> UrdfModel:
        return parse_urdf(text)

    @classmethod
    def from_file(cls, path: str | Path) -> UrdfModel:
        return load_urdf(path)

    def children(self, link: str) -> list[Joint]:
        return [j for j in self.joints.values() if j.parent == link]

    def path(self, base: str, tip: str) -> list[Joint]:
        """Joints from `base` down to `tip`, in order; UrdfError if `base` is not above `tip`."""
        for link in (base, tip):
            if link not in self.links:
                shown = ", ".join(self.links[:12]) + (", ..." if len(self.links) > 12 else "")
                raise UrdfError(f"unknown link {link!r} in URDF {self.name!r} (links: {shown})")
        joints: list[Joint] = []
        link = tip
        while link != base:
            if link not in self.parent_joint:
                raise UrdfError(f"link {base!r} is not an ancestor of {tip!r} in URDF {self.name!r}; "
                                f"a chain must go from a link down to one of its descendants")
            joint = self.joints[self.parent_joint[link]]
            joints.append(joint)
            link = joint.parent
        return joints[::-1]

    def chain(self, base: str | None = None, tip: str | None = None) -> KinematicChain:
        """Chain from `base` (default: the root link) to `tip` (default: `default_tip(self)`)."""
        base = base or self.root
        tip = tip or default_tip(self)
        return KinematicChain(self.path(base, tip), base, tip)

    def joint_value(self, joint: Joint, positions: Mapping[str, float]) -> float:
        """Position of `joint`: its mimic rule if it has one, else `positions[name]`, else 0."""
        if joint.mimic is not None:
            return joint.mimic.multiplier * float(positions.get(joint.mimic.joint, 0.0)) + joint.mimic.offset
        return float(positions.get(joint.name, 0.0))

    def link_transforms(self, positions: Mapping[str, float]) -> list[tuple[Joint, np.ndarray]]:
        """(joint, parent -> child 4x4) for every joint, the way robot_state_publisher publishes TF.

        Movable joints missing from `positions` sit at 0 so that every link stays connected; floating and
        planar joints contribute their origin only.
        """
        return [(joint, joint.transform(self.joint_value(joint, positions))) for joint in self.joints.values()]


def parse_urdf(text: str) -> UrdfModel:
    """Parse URDF XML text; UrdfError names what is wrong (bad XML, missing attribute, unknown link, ...)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise UrdfError(f"URDF is not well-formed XML: {error}") from None
    if root.tag != "robot":
        raise UrdfError(f"URDF root element must be <robot>, got <{root.tag}>")
    links: list[str] = []
    for element in root.findall("link"):
        name = element.get("name")
        if not name:
            raise UrdfError("a <link> has no name attribute")
        if name in links:
            raise UrdfError(f"link {name!r} is defined twice")
        links.append(name)
    if not links:
        raise UrdfError("URDF has no <link> elements")
    joints: dict[str, Joint] = {}
    parent_joint: dict[str, str] = {}
    link_set = set(links)
    for element in root.findall("joint"):
        joint = _parse_joint(element, link_set)
        if joint.name in joints:
            raise UrdfError(f"joint {joint.name!r} is defined twice")
        if joint.child in parent_joint:
            raise UrdfError(f"link {joint.child!r} has two parent joints: {parent_joint[joint.child]!r} "
                            f"and {joint.name!r}")
        joints[joint.name] = joint
        parent_joint[joint.child] = joint.name
    for joint in joints.values():
        if joint.mimic is not None and joint.mimic.joint not in joints:
            raise UrdfError(f"joint {joint.name!r} mimics unknown joint {joint.mimic.joint!r}")
    roots = [link for link in links if link not in parent_joint]
    if len(roots) != 1:
        raise UrdfError(f"URDF must form one tree with one root link, found roots {roots} "
                        "(a joint cycle or a link not connected by any joint)")
    return UrdfModel(root.get("name", ""), tuple(links), joints, parent_joint, roots[0])


def load_urdf(path: str | Path) -> UrdfModel:
    path = Path(path)
    if not path.is_file():
        raise UrdfError(f"URDF file not found: {path}")
    try:
        return parse_urdf(path.read_text())
    except UrdfError as error:
        raise UrdfError(f"{path}: {error}") from None


def _as_model(urdf: UrdfModel | str) -> UrdfModel:
    return urdf if isinstance(urdf, UrdfModel) else parse_urdf(urdf)


def default_tip(urdf: UrdfModel | str, joint_names: Sequence[str] | None = None) -> str:
    """The tool frame a path should follow: the end of the longest arm chain.

    The arm's last joint is the last of `joint_names` along the tree when given (the robot config's joints),
    else the last rotational joint of the leaf with the most rotational joints (prismatic joints are usually
    gripper fingers, so they do not lengthen the arm). From that joint's child link, fixed joints lead to the
    tool frame: the deepest link reachable through fixed joints only (franka's `fr3_hand_tcp`, UR's `tool0`).
    Ties go to the alphabetically first link.
    """
    model = _as_model(urdf)

    def depth(link: str) -> int:
        return len(model.path(model.root, link))

    if joint_names:
        missing = [n for n in joint_names if n not in model.joints]
        if missing:
            raise UrdfError(f"joints {missing} are not in URDF {model.name!r}")
        last = max((model.joints[n] for n in joint_names), key=lambda j: depth(j.child))
    else:
        leaves = [link for link in model.links if not model.children(link)]

        def rotational(leaf: str) -> list[Joint]:
            return [j for j in model.path(model.root, leaf) if j.type in ROTATIONAL and j.mimic is None]

        best = max(sorted(leaves), key=lambda leaf: len(rotational(leaf)))
        arm = rotational(best)
        if not arm:
            return best
        last = arm[-1]
    candidates = [(0, last.child)]
    frontier = [last.child]
    while frontier:
        link = frontier.pop()
        for joint in model.children(link):
            if joint.type == "fixed":
                candidates.append((depth(joint.child) - depth(last.child), joint.child))
                frontier.append(joint.child)
    return min(candidates, key=lambda c: (-c[0], c[1]))[1]


# ------------------------------------------------------------------------------------------------- chains
@dataclass
class _Step:
    """One movable joint of a compiled chain: its motion, then the constant transform up to the next one."""

    kind: str  # "rotational" or "prismatic"
    axis: np.ndarray
    skew: np.ndarray
    skew2: np.ndarray
    source: int | None  # input column, or None for a mimic of a joint outside the chain (master taken as 0)
    multiplier: float
    offset: float
    after: np.ndarray  # 4x4 from this joint's child link to the next movable joint's frame (or to the tip)


class KinematicChain:
    """Joints from `base` to `tip`; inputs are the chain's movable, non-mimic joints in path order."""

    def __init__(self, joints: Sequence[Joint], base: str, tip: str) -> None:
        self.base = base
        self.tip = tip
        self.joints: tuple[Joint, ...] = tuple(joints)
        for joint in self.joints:
            if joint.type in ("floating", "planar"):
                raise UrdfError(f"joint {joint.name!r} is {joint.type}; a chain supports only "
                                "revolute, continuous, prismatic and fixed joints")
        self.joint_names: tuple[str, ...] = tuple(j.name for j in self.joints if j.movable and j.mimic is None)
        index = {name: i for i, name in enumerate(self.joint_names)}
        self.lower = np.array([-np.inf if j.lower is None else j.lower for j in self._inputs()])
        self.upper = np.array([np.inf if j.upper is None else j.upper for j in self._inputs()])
        head = np.eye(4)
        steps: list[_Step] = []
        pending = head
        for joint in self.joints:
            pending = pending @ joint.origin
            if not joint.movable:
                continue
            if steps:
                steps[-1].after = pending
            else:
                head = pending
            mimic = joint.mimic
            skew = skew_matrix(joint.axis)
            steps.append(_Step(
                kind="rotational" if joint.type in ROTATIONAL else "prismatic",
                axis=joint.axis,
                skew=skew,
                skew2=skew @ skew,
                source=index.get(mimic.joint) if mimic else index[joint.name],
                multiplier=mimic.multiplier if mimic else 1.0,
                offset=mimic.offset if mimic else 0.0,
                after=np.eye(4),
            ))
            pending = np.eye(4)
        if steps:
            steps[-1].after = pending
        else:
            head = pending
        self._head = head
        self._steps = tuple(steps)
        self._columns: dict[tuple[str, ...], np.ndarray] = {}

    def _inputs(self) -> list[Joint]:
        by_name = {j.name: j for j in self.joints}
        return [by_name[n] for n in self.joint_names]

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def __repr__(self) -> str:
        return f"KinematicChain({self.base!r} -> {self.tip!r}, joints={list(self.joint_names)})"

    def _matrix(self, q: np.ndarray | Mapping[str, float], names: Sequence[str] | None) -> np.ndarray:
        """Inputs as a float [H, n] matrix in chain order."""
        if isinstance(q, Mapping):
            missing = [n for n in self.joint_names if n not in q]
            if missing:
                raise ValueError(f"no position given for chain joint(s) {missing}")
            return np.array([[float(q[n]) for n in self.joint_names]], dtype=np.float64)
        values = np.asarray(q, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2:
            raise ValueError(f"joint positions must be [n] or [H, n], got shape {values.shape}")
        if names is not None:
            values = values[:, self._column_index(tuple(names), values.shape[1])]
        elif values.shape[1] != self.n_joints:
            raise ValueError(f"expected {self.n_joints} joint positions {list(self.joint_names)}, "
                             f"got {values.shape[1]}")
        return values

    def _column_index(self, names: tuple[str, ...], width: int) -> np.ndarray:
        if len(names) != width:
            raise ValueError(f"{len(names)} names for {width} columns")
        cached = self._columns.get(names)
        if cached is None:
            missing = [n for n in self.joint_names if n not in names]
            if missing:
                raise ValueError(f"columns {list(names)} lack chain joint(s) {missing}")
            cached = np.array([names.index(n) for n in self.joint_names], dtype=np.intp)
            self._columns[names] = cached
        return cached

    def poses(self, q: np.ndarray | Mapping[str, float], names: Sequence[str] | None = None) -> np.ndarray:
        """Tip poses [H, 4, 4] in the base frame for joint positions [H, n] (or [n], or a name mapping).

        names: the joints of q's columns when they are not exactly the chain's joints in chain order (e.g. an
        action chunk whose columns are the robot's joints plus its gripper); extra columns are ignored.
        """
        values = self._matrix(q, names)
        horizon = values.shape[0]
        out = np.broadcast_to(self._head, (horizon, 4, 4)).copy()
        for step in self._steps:
            theta = np.zeros(horizon) if step.source is None else values[:, step.source] * step.multiplier
            if step.offset:
                theta = theta + step.offset
            if step.kind == "rotational":
                s, c = np.sin(theta), np.cos(theta)
                rot = np.eye(3) + s[:, None, None] * step.skew + (1.0 - c)[:, None, None] * step.skew2
                out[:, :3, :3] = out[:, :3, :3] @ rot
            else:
                out[:, :3, 3] += out[:, :3, :3] @ step.axis * theta[:, None]
            out = out @ step.after
        return out

    def positions(self, q: np.ndarray | Mapping[str, float], names: Sequence[str] | None = None) -> np.ndarray:
        """Tip positions [H, 3] in the base frame (see `poses`)."""
        return self.poses(q, names)[:, :3, 3]

    def fk(self, q: np.ndarray | Mapping[str, float], names: Sequence[str] | None = None) -> np.ndarray:
        """Tip pose (4x4) in the base frame for one configuration: [n] in chain order or {joint name: value}."""
        values = self._matrix(q, names)
        if values.shape[0] != 1:
            raise ValueError(f"fk takes one configuration; use poses() for {values.shape[0]}")
        return self.poses(values)[0]
