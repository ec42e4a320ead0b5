"""Joint-space messages: JointState in; JointTrajectory, Float64MultiArray and JointJog out (and back, for replay).

Decoders validate what arm drivers are known to get wrong (length mismatches, NaN, duplicate names,
non-increasing trajectory times) and raise MessageError; encoders take numpy and raise ValueError for
caller mistakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, check_unique, float_array, get_field, string_list
from vla_policy_node.msgs.stamps import duration_to_seconds, header_stamp, make_duration, make_header

JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_JOG = "control_msgs/msg/JointJog"


@dataclass(frozen=True)
class JointStateData:
    stamp: float
    names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray | None  # None when the message carries no velocities
    efforts: np.ndarray | None  # may contain NaN (drivers without torque sensing publish NaN)

    def positions_for(self, names: Sequence[str]) -> np.ndarray:
        """Positions reordered to `names`; MessageError if a joint is missing."""
        return _reorder(self.names, self.positions, names, "position")

    def velocities_for(self, names: Sequence[str]) -> np.ndarray | None:
        return None if self.velocities is None else _reorder(self.names, self.velocities, names, "velocity")


def _reorder(have: tuple[str, ...], values: np.ndarray, want: Sequence[str], what: str) -> np.ndarray:
    key = (tuple(have), tuple(want))
    order = _ORDERS.get(key)  # a topic sends the same names every time: matched once
    if order is None:
        index = {name: i for i, name in enumerate(have)}
        missing = [name for name in want if name not in index]
        if missing:
            raise MessageError("missing_joint", f"joint state lacks {what} of {missing}", JOINT_STATE)
        order = np.array([index[name] for name in want], dtype=np.intp)  # an index array: no list conversion per use
        if len(_ORDERS) >= 32:
            _ORDERS.clear()
        _ORDERS[key] = order
    return values[order]


_ORDERS: dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = {}  # (names, wanted) -> indices, recent


def _optional_array(values: Any, n: int, what: str, *, finite: bool) -> np.ndarray | None:
    array = float_array(values, what, JOINT_STATE, finite=finite)
    if array.size == 0:
        return None
    if array.size != n:
        raise MessageError("length_mismatch", f"{n} names but {array.size} {what} values", JOINT_STATE)
    return array


def decode_joint_state(msg: Any) -> JointStateData:
    names = string_list(get_field(msg, "name", JOINT_STATE))
    check_unique(names, "name", JOINT_STATE)
    positions = float_array(get_field(msg, "position", JOINT_STATE), "position", JOINT_STATE)
    if positions.size != len(names):
        raise MessageError("length_mismatch", f"{len(names)} names but {positions.size} positions", JOINT_STATE)
    return JointStateData(
        stamp=header_stamp(msg),
        names=names,
        positions=positions,
        velocities=_optional_array(msg.velocity, len(names), "velocity", finite=True),
        efforts=_optional_array(msg.effort, len(names), "effort", finite=False),
    )


def encode_joint_state(
    new: MessageFactory,
    names: Sequence[str],
    positions: Sequence[float] | np.ndarray,
    velocities: Sequence[float] | np.ndarray | None = None,
    efforts: Sequence[float] | np.ndarray | None = None,
    *,
    stamp: float = 0.0,
    frame_id: str = "",
) -> Any:
    n = len(names)
    arrays = {}
    for key, values in (("position", positions), ("velocity", velocities), ("effort", efforts)):
        array = np.zeros(0) if values is None else np.asarray(values, dtype=np.float64).reshape(-1)
        if values is not None and array.size != n:
            raise ValueError(f"{n} joint names but {array.size} {key} values")
        arrays[key] = array
    return new(JOINT_STATE, header=make_header(new, stamp, frame_id), name=list(names), **arrays)


# ---------------------------------------------------------------------------------------------------------
# JointTrajectory (joint_trajectory_controller)


@dataclass(frozen=True)
class JointTrajectoryData:
    stamp: float  # 0.0 means "start now" for joint_trajectory_controller
    joint_names: tuple[str, ...]
    positions: np.ndarray  # [N, D]
    velocities: np.ndarray | None  # [N, D] or None
    times_from_start: np.ndarray  # [N] seconds


def encode_joint_trajectory(
    new: MessageFactory,
    joint_names: Sequence[str],
    positions: np.ndarray,
    times_from_start: Sequence[float] | np.ndarray,
    velocities: np.ndarray | None = None,
    *,
    stamp: float = 0.0,
    frame_id: str = "",
) -> Any:
    """positions [N, D] reached at `times_from_start` [N] (strictly increasing) after `stamp` (0 = now)."""
    positions = np.asarray(positions, dtype=np.float64)
    times = np.asarray(times_from_start, dtype=np.float64).reshape(-1)
    if positions.ndim != 2 or positions.shape[1] != len(joint_names):
        raise ValueError(f"positions must be [N, {len(joint_names)}], got {positions.shape}")
    if times.shape != (positions.shape[0],):
        raise ValueError(f"need {positions.shape[0]} times_from_start, got {times.size}")
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float64)
        if velocities.shape != positions.shape:
            raise ValueError(f"velocities shape {velocities.shape} != positions shape {positions.shape}")
    if not (np.isfinite(positions).all() and np.isfinite(times).all()):  # methods: no dispatch (per tick)
        raise ValueError("trajectory contains NaN/inf")
    if times.shape[0] > 1 and (np.diff(times) <= 0).any():
        raise ValueError("times_from_start must be strictly increasing")
    points = [
        new(
            "trajectory_msgs/msg/JointTrajectoryPoint",
            positions=positions[k],
            velocities=velocities[k] if velocities is not None else np.zeros(0),
            time_from_start=make_duration(new, float(times[k])),
        )
        for k in range(positions.shape[0])
    ]
    return new(JOINT_TRAJECTORY, header=make_header(new, stamp, frame_id), joint_names=list(joint_names), points=points)


def decode_joint_trajectory(msg: Any) -> JointTrajectoryData:
    names = string_list(get_field(msg, "joint_names", JOINT_TRAJECTORY))
    check_unique(names, "joint_names", JOINT_TRAJECTORY)
    points = list(get_field(msg, "points", JOINT_TRAJECTORY))
    if not points:
        raise MessageError("empty_trajectory", "trajectory has no points", JOINT_TRAJECTORY)
    positions, velocities, times = [], [], []
    for k, point in enumerate(points):
        p = float_array(point.positions, f"points[{k}].positions", JOINT_TRAJECTORY)
        if p.size != len(names):
            raise MessageError("length_mismatch", f"{len(names)} joints but points[{k}] has {p.size} positions",
                               JOINT_TRAJECTORY)
        v = float_array(point.velocities, f"points[{k}].velocities", JOINT_TRAJECTORY)
        if v.size not in (0, len(names)):
            raise MessageError("length_mismatch", f"{len(names)} joints but points[{k}] has {v.size} velocities",
                               JOINT_TRAJECTORY)
        positions.append(p)
        velocities.append(v)
        times.append(duration_to_seconds(point.time_from_start))
    times_array = np.asarray(times)
    if any(b - a <= 0 for a, b in pairwise(times)):  # np.diff(times) <= 0, without numpy calls
        raise MessageError("bad_timing", f"time_from_start not strictly increasing: {times}", JOINT_TRAJECTORY)
    has_velocities = all(v.size for v in velocities)
    return JointTrajectoryData(
        stamp=header_stamp(msg),
        joint_names=names,
        positions=np.stack(positions),
        velocities=np.stack(velocities) if has_velocities else None,
        times_from_start=times_array,
    )


# ---------------------------------------------------------------------------------------------------------
# Float64MultiArray (forward_command_controller)


def encode_float64_array(new: MessageFactory, values: Sequence[float] | np.ndarray, label: str = "") -> Any:
    """A flat command vector; a one-dimensional layout is written only when `label` is given."""
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(data)):
        raise ValueError("command contains NaN/inf")
    dims = []
    if label:
        dims = [new("std_msgs/msg/MultiArrayDimension", label=label, size=data.size, stride=data.size)]
    layout = new("std_msgs/msg/MultiArrayLayout", dim=dims, data_offset=0)
    return new(FLOAT64_ARRAY, layout=layout, data=data)


def decode_float64_array(msg: Any, expected_size: int | None = None) -> np.ndarray:
    """Values after `layout.data_offset`; MessageError on NaN/inf or when the size is not `expected_size`."""
    offset = int(msg.layout.data_offset) if hasattr(msg, "layout") else 0
    data = float_array(get_field(msg, "data", FLOAT64_ARRAY), "data", FLOAT64_ARRAY)
    if offset < 0 or offset > data.size:
        raise MessageError("bad_layout", f"data_offset {offset} outside data of {data.size}", FLOAT64_ARRAY)
    data = data[offset:]
    if expected_size is not None and data.size != expected_size:
        raise MessageError("length_mismatch", f"expected {expected_size} values, got {data.size}", FLOAT64_ARRAY)
    return data


# ---------------------------------------------------------------------------------------------------------
# control_msgs/JointJog (MoveIt Servo)


@dataclass(frozen=True)
class JointJogData:
    stamp: float
    joint_names: tuple[str, ...]
    displacements: np.ndarray | None
    velocities: np.ndarray | None
    duration: float


def encode_joint_jog(
    new: MessageFactory,
    joint_names: Sequence[str],
    *,
    velocities: Sequence[float] | np.ndarray | None = None,
    displacements: Sequence[float] | np.ndarray | None = None,
    duration: float = 0.0,
    stamp: float = 0.0,
    frame_id: str = "",
) -> Any:
    arrays = {}
    for key, values in (("velocities", velocities), ("displacements", displacements)):
        array = np.zeros(0) if values is None else np.asarray(values, dtype=np.float64).reshape(-1)
        if values is not None and array.size != len(joint_names):
            raise ValueError(f"{len(joint_names)} joints but {array.size} {key}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{key} contain NaN/inf")
        arrays[key] = array
    return new(JOINT_JOG, header=make_header(new, stamp, frame_id), joint_names=list(joint_names),
               duration=float(duration), **arrays)


def decode_joint_jog(msg: Any) -> JointJogData:
    names = string_list(get_field(msg, "joint_names", JOINT_JOG))
    out = {}
    for key in ("displacements", "velocities"):
        array = float_array(getattr(msg, key), key, JOINT_JOG)
        if array.size not in (0, len(names)):
            raise MessageError("length_mismatch", f"{len(names)} joints but {array.size} {key}", JOINT_JOG)
        out[key] = array if array.size else None
    return JointJogData(header_stamp(msg), names, out["displacements"], out["velocities"], float(msg.duration))
