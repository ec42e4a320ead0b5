"""config/mux.yaml (twist_mux-style inputs, locks, hand-over) -> `MuxConfig` plus the topics the mux listens to.

The YAML is what an operator edits; `MuxConfig` is what the control runtime runs. Loading is strict, like the
robot configs: an unknown key or a bad value is a `MuxFileError` naming the field path
(`inputs.teleop.timeout`), because a typo in a safety config must never become a silently ignored setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vla_policy_node.control.config import LockSpec, MuxConfig
from vla_policy_node.spec.embodiment import is_valid_topic


class MuxFileError(ValueError):
    """A mux YAML that does not describe a usable mux; the message names the field."""


@dataclass(frozen=True)
class TeleopTopics:
    joint_command: str  # sensor_msgs/JointState, absolute positions
    twist: str  # geometry_msgs/TwistStamped
    joint_jog: str  # control_msgs/JointJog


@dataclass(frozen=True)
class MuxTopics:
    """policy: the policy's commands; deadman: std_msgs/Bool; locks: lock name -> std_msgs/Bool topic;
    resume: std_msgs/Bool, a press hands control back to the policy after a teleop takeover ("" = none)."""

    policy: str
    teleop: TeleopTopics
    deadman: str
    locks: Mapping[str, str]
    resume: str = ""


@dataclass(frozen=True)
class MuxFile:
    """config: priorities/timeouts/locks for CommandMux; policy_timeout: staleness of policy commands (s)."""

    config: MuxConfig
    topics: MuxTopics
    policy_timeout: float


def _mapping(data: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    where = path or "<root>"
    if not isinstance(data, dict):
        raise MuxFileError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise MuxFileError(f"{_join(path, unknown[0])}: unknown key (allowed: {sorted(required + optional)})")
    missing = [key for key in required if key not in data]
    if missing:
        raise MuxFileError(f"{_join(path, missing[0])}: required field is missing")
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _number(value: Any, path: str, *, positive: bool = False, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MuxFileError(f"{path}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise MuxFileError(f"{path}: must be positive, got {value}")
    if minimum is not None and value < minimum:
        raise MuxFileError(f"{path}: must be >= {minimum}, got {value}")
    return float(value)


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MuxFileError(f"{path}: expected an integer, got {value!r}")
    return value


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise MuxFileError(f"{path}: expected true/false, got {value!r}")
    return value


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise MuxFileError(f"{path}: expected one of {list(allowed)}, got {value!r}")
    return str(value)


def _topic(value: Any, path: str) -> str:
    if not isinstance(value, str) or not is_valid_topic(value):
        raise MuxFileError(f"{path}: not a valid ROS topic name: {value!r}")
    return value


def mux_file_from_dict(data: Any) -> MuxFile:
    root = _mapping(data, "", ("inputs", "locks"), ("handover",))
    inputs = _mapping(root["inputs"], "inputs", ("policy", "teleop"))
    policy = _mapping(inputs["policy"], "inputs.policy", ("topic", "priority", "timeout"))
    teleop = _mapping(inputs["teleop"], "inputs.teleop", ("priority", "timeout", "topics"),
                      ("deadman", "handback", "resume_topic"))
    teleop_topics = _mapping(teleop["topics"], "inputs.teleop.topics", ("joint_command", "twist", "joint_jog"))
    deadman = _mapping(teleop.get("deadman", {}), "inputs.teleop.deadman", (), ("required", "topic", "timeout"))
    defaults = MuxConfig()

    locks_data = root["locks"]
    if not isinstance(locks_data, dict):
        raise MuxFileError(f"locks: expected a mapping of lock name -> settings, got {type(locks_data).__name__}")
    locks: list[LockSpec] = []
    lock_topics: dict[str, str] = {}
    for name, spec in locks_data.items():
        path = f"locks.{name}"
        spec = _mapping(spec, path, ("topic",), ("priority", "timeout", "latching"))
        lock_topics[str(name)] = _topic(spec["topic"], f"{path}.topic")
        locks.append(LockSpec(
            name=str(name),
            priority=_integer(spec.get("priority", 255), f"{path}.priority"),
            timeout=_number(spec.get("timeout", 0.0), f"{path}.timeout", minimum=0.0),
            latching=_flag(spec.get("latching", False), f"{path}.latching"),
        ))

    handover = _mapping(root.get("handover", {}), "handover", (), ("speed_fraction", "min_time", "twist_ramp_time"))
    try:
        config = MuxConfig(
            policy_priority=_integer(policy["priority"], "inputs.policy.priority"),
            teleop_priority=_integer(teleop["priority"], "inputs.teleop.priority"),
            teleop_timeout=_number(teleop["timeout"], "inputs.teleop.timeout", positive=True),
            require_deadman=_flag(deadman.get("required", defaults.require_deadman), "inputs.teleop.deadman.required"),
            deadman_timeout=_number(deadman.get("timeout", defaults.deadman_timeout), "inputs.teleop.deadman.timeout",
                                    positive=True),
            locks=tuple(locks),
            handover_speed_fraction=_number(handover.get("speed_fraction", defaults.handover_speed_fraction),
                                            "handover.speed_fraction"),
            min_handover_time=_number(handover.get("min_time", defaults.min_handover_time), "handover.min_time"),
            twist_ramp_time=_number(handover.get("twist_ramp_time", defaults.twist_ramp_time),
                                    "handover.twist_ramp_time"),
            handback="auto" if _choice(teleop.get("handback", defaults.handback), "inputs.teleop.handback",
                                       ("resume", "auto")) == "auto" else "resume",
        )
    except ValueError as error:
        if isinstance(error, MuxFileError):
            raise
        raise MuxFileError(str(error)) from None
    if config.require_deadman and "topic" not in deadman:
        raise MuxFileError("inputs.teleop.deadman.topic: required when deadman.required is true")
    topics = MuxTopics(
        policy=_topic(policy["topic"], "inputs.policy.topic"),
        teleop=TeleopTopics(**{key: _topic(teleop_topics[key], f"inputs.teleop.topics.{key}")
                               for key in ("joint_command", "twist", "joint_jog")}),
        deadman=_topic(deadman["topic"], "inputs.teleop.deadman.topic") if "topic" in deadman else "",
        locks=lock_topics,
        resume=_topic(teleop["resume_topic"], "inputs.teleop.resume_topic") if "resume_topic" in teleop else "",
    )
    return MuxFile(config, topics, _number(policy["timeout"], "inputs.policy.timeout", positive=True))


def load_mux_file(path: str | Path) -> MuxFile:
    """Load and validate a mux YAML; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise MuxFileError(f"mux config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise MuxFileError(f"{path}: not valid YAML: {error}") from None
    try:
        return mux_file_from_dict(data)
    except MuxFileError as error:
        raise MuxFileError(f"{path}: {error}") from None
