"""Robot description shared by the model, the control runtime and the nodes.

Loaded from `config/robots/<robot>.yaml` and validated strictly: an unknown key, a missing field or a bad
value is an error that names the field path (e.g. `joints[2].upper`), because a typo in a robot config must
never become a silently ignored limit.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A robot config that does not describe a usable robot; the message names the field."""


ActionSpaceType = Literal["joint_position", "joint_delta", "ee_delta", "ee_pose"]
ControllerInterface = Literal["joint_trajectory", "forward_command", "servo_twist", "servo_pose"]
GripperInterface = Literal["gripper_action", "forward_command", "none"]

EE_POSITION_NAMES = ("x", "y", "z")
EE_ROTATION_NAMES = ("roll", "pitch", "yaw")

# ROS 2 topic name rules (absolute or relative, no `//`, no trailing `/`, tokens not starting with a digit).
_TOPIC_RE = re.compile(r"^~?/?([A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_][A-Za-z0-9_]*)*$")


def is_valid_topic(name: str) -> bool:
    return bool(_TOPIC_RE.match(name)) and name not in ("", "/")


@dataclass(frozen=True)
class JointSpec:
    name: str
    lower: float
    upper: float
    max_velocity: float
    max_acceleration: float
    max_jerk: float | None = None

    def validate(self, path: str) -> None:
        _require(self.name != "", f"{path}.name", "must not be empty")
        for key in ("lower", "upper", "max_velocity", "max_acceleration"):
            _require(math.isfinite(getattr(self, key)), f"{path}.{key}", "must be finite")
        _require(self.lower < self.upper, f"{path}.upper", f"must exceed lower ({self.lower})")
        _require(self.max_velocity > 0, f"{path}.max_velocity", "must be positive")
        _require(self.max_acceleration > 0, f"{path}.max_acceleration", "must be positive")
        if self.max_jerk is not None:
            _require(self.max_jerk > 0, f"{path}.max_jerk", "must be positive")


@dataclass(frozen=True)
class GripperSpec:
    """A gripper is one scalar: its joint position (e.g. finger opening in metres)."""

    name: str
    lower: float
    upper: float
    max_velocity: float
    interface: GripperInterface = "gripper_action"
    topic: str = ""
    max_effort: float = 20.0

    def validate(self, path: str) -> None:
        _require(self.name != "", f"{path}.name", "must not be empty")
        _require(self.lower < self.upper, f"{path}.upper", f"must exceed lower ({self.lower})")
        _require(self.max_velocity > 0, f"{path}.max_velocity", "must be positive")
        if self.interface != "none":
            _require(is_valid_topic(self.topic), f"{path}.topic", f"is not a valid ROS name: {self.topic!r}")


@dataclass(frozen=True)
class CameraSpec:
    """A camera the policy reads; `height`/`width` is the resolution the model is fed."""

    name: str
    topic: str
    height: int = 224
    width: int = 224
    max_age: float = 0.2
    compressed: bool = False

    def validate(self, path: str) -> None:
        _require(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name) is not None, f"{path}.name",
                 f"must be an identifier, got {self.name!r}")
        _require(is_valid_topic(self.topic), f"{path}.topic", f"is not a valid ROS name: {self.topic!r}")
        _require(self.height > 0 and self.width > 0, f"{path}.height", "height and width must be positive")
        _require(self.max_age > 0, f"{path}.max_age", "must be positive")


@dataclass(frozen=True)
class JointStateInput:
    topic: str = "/joint_states"
    max_age: float = 0.1

    def validate(self, path: str) -> None:
        _require(is_valid_topic(self.topic), f"{path}.topic", f"is not a valid ROS name: {self.topic!r}")
        _require(self.max_age > 0, f"{path}.max_age", "must be positive")


@dataclass(frozen=True)
class ActionSpace:
    """What the policy's action dims mean. Cartesian spaces carry their workspace and speed limits."""

    type: ActionSpaceType = "joint_position"
    frame: str = "base_link"
    ee_link: str = ""
    workspace_min: tuple[float, float, float] = (-1.0, -1.0, 0.0)
    workspace_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    max_linear_speed: float = 0.25
    max_angular_speed: float = 1.0

    @property
    def cartesian(self) -> bool:
        return self.type in ("ee_delta", "ee_pose")

    def validate(self, path: str) -> None:
        if self.cartesian:
            _require(self.ee_link != "", f"{path}.ee_link", "is required for Cartesian action spaces")
            _require(len(self.workspace_min) == 3 and len(self.workspace_max) == 3, f"{path}.workspace_min",
                     "workspace bounds need 3 values each")
            for lo, hi in zip(self.workspace_min, self.workspace_max, strict=True):
                _require(lo < hi, f"{path}.workspace_max", "each value must exceed workspace_min")
            _require(self.max_linear_speed > 0, f"{path}.max_linear_speed", "must be positive")
            _require(self.max_angular_speed > 0, f"{path}.max_angular_speed", "must be positive")


@dataclass(frozen=True)
class ControllerSpec:
    interface: ControllerInterface = "joint_trajectory"
    topic: str = "/joint_trajectory_controller/joint_trajectory"

    def validate(self, path: str) -> None:
        _require(is_valid_topic(self.topic), f"{path}.topic", f"is not a valid ROS name: {self.topic!r}")


@dataclass(frozen=True)
class Rates:
    """control_hz: command timer; action_dt: spacing of chunk actions; inference_hz: re-plan cap."""

    control_hz: float = 250.0
    action_dt: float = 0.1
    inference_hz: float = 10.0

    def validate(self, path: str) -> None:
        _require(self.control_hz > 0, f"{path}.control_hz", "must be positive")
        _require(self.action_dt > 0, f"{path}.action_dt", "must be positive")
        _require(self.inference_hz > 0, f"{path}.inference_hz", "must be positive")


@dataclass(frozen=True)
class SafetySpec:
    """position_margin shrinks joint limits; max_relative_target caps one step's change (LeRobot-style)."""

    position_margin: float = 0.02
    max_relative_target: float | None = None

    def validate(self, path: str) -> None:
        _require(self.position_margin >= 0, f"{path}.position_margin", "must be >= 0")
        if self.max_relative_target is not None:
            _require(self.max_relative_target > 0, f"{path}.max_relative_target", "must be positive")


@dataclass(frozen=True)
class Embodiment:
    """One robot: joints and limits, cameras and topics, action space, controller, rates.

    `tag` selects the per-embodiment encoders/decoders of the action head (defaults to `name`).
    """

    name: str
    joints: tuple[JointSpec, ...]
    cameras: tuple[CameraSpec, ...]
    action_space: ActionSpace = field(default_factory=ActionSpace)
    controller: ControllerSpec = field(default_factory=ControllerSpec)
    gripper: GripperSpec | None = None
    joint_states: JointStateInput = field(default_factory=JointStateInput)
    rates: Rates = field(default_factory=Rates)
    safety: SafetySpec = field(default_factory=SafetySpec)
    tag: str = ""
    description: str = ""
    urdf: str = ""
    base_frame: str = "base_link"

    def __post_init__(self) -> None:
        if not self.tag:
            object.__setattr__(self, "tag", self.name)
        self.validate()

    def validate(self) -> None:
        _require(self.name != "", "name", "must not be empty")
        _require(len(self.joints) > 0, "joints", "at least one joint is required")
        names = [j.name for j in self.joints]
        _require(len(set(names)) == len(names), "joints", f"joint names must be unique: {names}")
        for i, joint in enumerate(self.joints):
            joint.validate(f"joints[{i}]")
        _require(len(self.cameras) > 0, "cameras", "at least one camera is required")
        cam_names = [c.name for c in self.cameras]
        _require(len(set(cam_names)) == len(cam_names), "cameras", f"camera names must be unique: {cam_names}")
        for i, cam in enumerate(self.cameras):
            cam.validate(f"cameras[{i}]")
        if self.gripper is not None:
            self.gripper.validate("gripper")
            _require(self.gripper.name not in names, "gripper.name", "must differ from the arm joint names")
        self.joint_states.validate("joint_states")
        self.action_space.validate("action_space")
        self.controller.validate("controller")
        self.rates.validate("rates")
        self.safety.validate("safety")
        cartesian_ctrl = self.controller.interface in ("servo_twist", "servo_pose")
        _require(cartesian_ctrl == self.action_space.cartesian, "controller.interface",
                 f"{self.controller.interface!r} does not fit action space {self.action_space.type!r}")

    # The names and dimensions below are computed once per embodiment (it is frozen; `dataclasses.replace` makes a
    # new one with its own cache): the control tick and the input side read them on every message.
    @cached_property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @cached_property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @cached_property
    def state_names(self) -> tuple[str, ...]:
        """Proprioception order: arm joints, then the gripper."""
        extra = (self.gripper.name,) if self.gripper else ()
        return self.joint_names + extra

    @cached_property
    def action_names(self) -> tuple[str, ...]:
        extra = (self.gripper.name,) if self.gripper else ()
        kind = self.action_space.type
        if kind == "joint_position":
            return self.joint_names + extra
        if kind == "joint_delta":
            return tuple(f"delta_{n}" for n in self.joint_names) + extra
        return EE_POSITION_NAMES + EE_ROTATION_NAMES + extra

    @cached_property
    def state_dim(self) -> int:
        return len(self.state_names)

    @cached_property
    def action_dim(self) -> int:
        return len(self.action_names)

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"embodiment {self.name!r} has no camera {name!r}; cameras: {self.camera_names}")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Embodiment:
        try:
            return _build(cls, data, "")
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
            raise ConfigError(str(exc)) from exc


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML parse error on one line ("line 3, column 1: expected the node content..."): PyYAML's own
    message spans several lines with a source excerpt, too much for a CLI's one-line error."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def load_embodiment(path: str | Path) -> Embodiment:
    """Load and validate a robot YAML; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"robot config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        return Embodiment.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _require(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: {message}")


def _build(cls: type, data: Any, path: str) -> Any:
    """Build a frozen dataclass from plain YAML data, rejecting unknown keys by name."""
    where = path or "<root>"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(path, unknown[0])}: unknown key (allowed: {sorted(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{_join(path, name)}: required field is missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], _join(path, name))
    return cls(**kwargs)


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {hint}")  # pragma: no cover


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj
