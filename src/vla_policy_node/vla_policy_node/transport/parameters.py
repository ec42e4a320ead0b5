"""ROS 2 node parameters as plain data, with one set of rules for both live transports.

`Param` declares a parameter (default, description, whether `ros2 param set` may change it while the node
runs, a numeric range, a list of choices, and for limits the direction that is stricter). `change_problem`
is the node-side rule every set passes through: under rclpy from an on-set callback (rclpy itself checks type
and range first), over DDS from `ParameterTable`, which reproduces rclpy's own checks with rclpy's wording,
so `ros2 param list/get/set/describe` read the same against a node on either transport (rclpy is the
reference where they could differ).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

Stricter = Literal["", "lower", "higher"]
ChangeHandler = Callable[[str, Any], str]  # (name, new value) -> "" when applied, else why it was refused
SetCallback = Callable[[list[tuple[str, Any]]], str]  # all changes of one set -> "" or why it was refused

STARTUP_ONLY = "(read at start-up; `ros2 param set` is refused)"
PARAM_REL_TOL = 1e-6  # rclpy's Node.PARAM_REL_TOL: range edges compare with this relative tolerance


class ParameterType(IntEnum):
    """rcl_interfaces/msg/ParameterType (and rclpy's Parameter.Type, whose str() is 'Type.<NAME>')."""

    NOT_SET = 0
    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    BYTE_ARRAY = 5
    BOOL_ARRAY = 6
    INTEGER_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9

    def rclpy_str(self) -> str:
        return f"Type.{self.name}"


def parameter_type(value: Any) -> ParameterType:
    """The ROS type of a Python value (as rclpy's Parameter.Type.from_parameter_value)."""
    if value is None:
        return ParameterType.NOT_SET
    if isinstance(value, bool):
        return ParameterType.BOOL
    if isinstance(value, int):
        return ParameterType.INTEGER
    if isinstance(value, float):
        return ParameterType.DOUBLE
    if isinstance(value, str):
        return ParameterType.STRING
    if isinstance(value, bytes | bytearray):
        return ParameterType.BYTE_ARRAY
    if isinstance(value, list | tuple):
        if all(isinstance(v, bool) for v in value):
            return ParameterType.BOOL_ARRAY
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ParameterType.INTEGER_ARRAY
        if all(isinstance(v, float) for v in value):
            return ParameterType.DOUBLE_ARRAY
        if all(isinstance(v, str) for v in value):
            return ParameterType.STRING_ARRAY
    raise TypeError(f"no ROS parameter type for {value!r}")


@dataclass(frozen=True)
class Param:
    """A node parameter: its start-up value (the command line's), what it means, and whether `ros2 param set`
    may change it while the node runs (`live`: the node's handler applies it or refuses with a reason).
    `range`: (from, to) for numbers, shown by `ros2 param describe` and enforced like rclpy does.
    `choices`: the allowed strings. `stricter`: for a limit, "lower" or "higher" is the stricter direction;
    live changes then only go that way (loosening needs a relaunch: a deliberate act, never a slip).
    `read_only`: refused the way rclpy refuses its read-only parameters (start_type_description_service)."""

    default: Any
    description: str = ""
    live: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    stricter: Stricter = ""
    read_only: bool = False  # rclpy's own kind of refusal (its descriptor flag), for rclpy's own parameters

    def __post_init__(self) -> None:
        if self.range is not None and (isinstance(self.default, bool) or not isinstance(self.default, int | float)):
            raise TypeError(f"a range needs a numeric parameter, got {self.default!r}")
        if self.stricter and not self.live:
            raise ValueError("`stricter` only means something for a live parameter")

    @property
    def type(self) -> ParameterType:
        return parameter_type(self.default)

    def description_text(self) -> str:
        return (self.description + ("" if self.live or self.read_only else " " + STARTUP_ONLY)).strip()

    def constraints_text(self) -> str:
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.stricter:
            parts.append(f"while running only {self.stricter} (stricter); relaunch to loosen")
        return "; ".join(parts)


def startup_only_reason(name: str) -> str:
    return f"{name} is read once at start-up: relaunch the node to change it"


def change_problem(name: str, spec: Param, current: Any, new: Any) -> str:
    """The node's own rule for one live change ("" when allowed): start-up parameters are refused, choices
    enforced, limits only tightened."""
    if not spec.live:
        return startup_only_reason(name)
    if spec.choices and new not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {new!r}"
    if spec.stricter and isinstance(new, int | float) and isinstance(current, int | float):
        looser = new > current if spec.stricter == "lower" else new < current
        if looser:
            return (f"{name} {current} -> {new} would loosen a limit: while the node runs limits only become "
                    f"stricter ({spec.stricter}); relaunch the node to loosen them")
    return ""


def on_set_rule(params: Mapping[str, Param], current: Callable[[str], Any], handler: ChangeHandler) -> SetCallback:
    """The on-set callback both transports run: our parameters pass `change_problem` (all of them, before any is
    applied), then `handler` applies them one by one; parameters not in `params` (use_sim_time) are left to the
    transport."""

    def on_set(changes: list[tuple[str, Any]]) -> str:
        ours = [(name, value) for name, value in changes if name in params]
        for name, value in ours:
            problem = change_problem(name, params[name], current(name), value)
            if problem:
                return problem
        for name, value in ours:
            problem = handler(name, value)
            if problem:
                return f"{name}: {problem}"
        return ""

    return on_set


# ------------------------------------------------------------------------------------------ DDS-side table
@dataclass
class SetResult:
    """rcl_interfaces/msg/SetParametersResult."""

    successful: bool
    reason: str = ""


@dataclass
class Declared:
    spec: Param
    value: Any
    type: ParameterType


@dataclass
class ParameterTable:
    """A node's parameters where rclpy is not there to hold them (the DDS transport): declare, get, list,
    describe and set with rclpy's checks and replies (read-only, static type, range, undeclared), then the
    on-set callbacks; `on_changed` callbacks see every successful set (the parameter events)."""

    params: dict[str, Declared] = field(default_factory=dict)
    _on_set: list[SetCallback] = field(default_factory=list)
    _on_changed: list[Callable[[list[tuple[str, Any]], list[str]], None]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def declare(self, name: str, spec: Param) -> Any:
        with self._lock:
            if name in self.params:
                return self.params[name].value
            self.params[name] = Declared(spec, spec.default, spec.type)
            new = [name]
        for callback in self._on_changed:
            callback([(name, spec.default)], new)
        return spec.default

    def has(self, name: str) -> bool:
        return name in self.params

    def get(self, name: str) -> Any:
        return self.params[name].value

    def type_of(self, name: str) -> ParameterType:
        return self.params[name].type

    def spec(self, name: str) -> Param:
        return self.params[name].spec

    def add_on_set(self, callback: SetCallback) -> None:
        self._on_set.append(callback)

    def add_on_changed(self, callback: Callable[[list[tuple[str, Any]], list[str]], None]) -> None:
        """callback(changed (name, value) pairs, names newly declared)."""
        self._on_changed.append(callback)

    def names(self, prefixes: Sequence[str] = (), depth: int = 0) -> tuple[list[str], list[str]]:
        """(names, prefixes) as rclpy's Node.list_parameters: depth 0 with no prefixes is everything."""
        separator = "."
        names, found = [], []

        def shallow(text: str) -> bool:
            return text.count(separator) < depth

        for name in self.params:
            if not prefixes and depth == 0:
                keep = True
            elif not prefixes:
                keep = shallow(name)
            else:
                keep = any(name == prefix or (name.startswith(prefix + separator)
                                              and (depth == 0 or shallow(name[len(prefix) + 1:])))
                           for prefix in prefixes)
            if keep:
                names.append(name)
                if separator in name:
                    prefix = name.rsplit(separator, 1)[0]
                    if prefix not in found:
                        found.append(prefix)
        return names, found

    def set_atomically(self, changes: Iterable[tuple[str, ParameterType, Any]]) -> SetResult:
        """Every change or none, as rclpy's set_parameters_atomically (the reply of one `ros2 param set`)."""
        changes = list(changes)
        with self._lock:
            undeclared = [name for name, _, _ in changes if name not in self.params]
            if undeclared:
                # rclpy's exact reply: its generator is consumed up to the first undeclared name before the
                # list is built, so the names after it are what it reports ([] for one parameter).
                return SetResult(False, f"Invalid access to undeclared parameter(s): {undeclared[1:]}")
            for name, kind, value in changes:
                problem = self._descriptor_problem(name, kind, value)
                if problem:
                    return SetResult(False, problem)
            plain = [(name, value) for name, _, value in changes]
            for callback in self._on_set:
                problem = callback(plain)
                if problem:
                    return SetResult(False, problem)
            for name, _, value in changes:
                self.params[name].value = value
        for changed in self._on_changed:
            changed(plain, [])
        return SetResult(True)

    def _descriptor_problem(self, name: str, kind: ParameterType, value: Any) -> str:
        declared = self.params[name]
        if declared.spec.read_only:
            return f"Trying to set a read-only parameter: {name}."
        if kind == ParameterType.NOT_SET:
            return "Static parameter cannot be undeclared"
        if kind != declared.type:
            return f"Wrong parameter type, expected '{declared.type.rclpy_str()}' got '{kind.rclpy_str()}'"
        bounds = declared.spec.range
        if bounds is None:
            return ""
        low, high = min(bounds), max(bounds)
        if kind == ParameterType.INTEGER:
            if value in (low, high) or low < value < high:
                return ""
            return f"Parameter {name} out of range. Min: {int(low)}, Max: {int(high)}, value: {value}"
        if math.isclose(value, low, rel_tol=PARAM_REL_TOL) or math.isclose(value, high, rel_tol=PARAM_REL_TOL):
            return ""
        if low < value < high:
            return ""
        return f"Parameter {name} out of range Min: {float(low)}, Max: {float(high)}, value: {value}"
