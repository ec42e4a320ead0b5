"""The replay's hot message types straight from CDR bytes: JointState and JointTrajectory to `JointStateData` /
`JointTrajectoryData`, sensor_msgs/Image to a light message object (`ImageMessage`), and std_msgs/String (a
replay's instructions: rosbags would compile a deserializer for the few of them) to `StringMessage`.

Why: a replay reads a joint state and a controller command every 10 ms of a recording. rosbags builds a
dataclass per message, header, stamp, point and duration, and the decoders then copy each array out of it
again: 60-90 µs per message, more than the control tick it feeds. These read the little-endian CDR layout as
rosbags' generated deserializers read it (the same positions, alignment and bounds checks) and apply the checks
of `decode_joint_state` / `decode_joint_trajectory`, giving the same data, array for array.

They take only the plain case: anything else (big-endian data, a bound, a string, a length, a duplicate name, a
NaN, a timing that the general path would reject or count) gives None, and the caller takes the general path
(rosbags, then the decoder), which raises or counts exactly as before. `same_definitions` says whether a
typestore's definitions are the ones this layout is written for.

An image is left to the node's own decoder (`decode_image`): `image_from_cdr` only replaces rosbags' dataclasses
with an object holding the same field values (pixels as a read-only view, as rosbags gives them), so a camera
frame costs a few struct reads instead of four dataclasses.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from vla_policy_node.control.small_arrays import all_finite
from vla_policy_node.msgs.images import IMAGE
from vla_policy_node.msgs.joints import JOINT_STATE, JOINT_TRAJECTORY, JointStateData, JointTrajectoryData

_U32 = struct.Struct("<I")
_TIME = struct.Struct("<iI")  # builtin_interfaces Time / Duration: int32 sec, uint32 nanosec
_LITTLE_ENDIAN_CDR = (b"\x00\x01",)
_NATIVE_LITTLE = sys.byteorder == "little"
_PADDING = 3  # bytes allowed after a message's end (rosbags refuses more: "CDR message size mismatch")
_IMAGE = struct.Struct("<II")  # height, width
STRING = "std_msgs/msg/String"
_LAYOUTS = {  # the field definitions (rosbags fielddefs) the readers below follow
    STRING: (STRING,),
    IMAGE: ("std_msgs/msg/Header", IMAGE),
    JOINT_STATE: ("std_msgs/msg/Header", "sensor_msgs/msg/JointState"),
    JOINT_TRAJECTORY: ("std_msgs/msg/Header", "trajectory_msgs/msg/JointTrajectory",
                       "trajectory_msgs/msg/JointTrajectoryPoint"),
}
_TYPES = ("builtin_interfaces/msg/Time", "builtin_interfaces/msg/Duration")


_EMPTY = np.empty(0)  # an empty float64[] (read-only: shared)
_EMPTY.setflags(write=False)
_RECENT_NAMES: dict[int, tuple[tuple[bytes, tuple[str, ...]], ...]] = {}  # start offset -> recent (bytes, names)


class _Unusual(Exception):
    """Not the plain case: the general path decides."""


def same_definitions(typestore: Any, msgtype: str) -> bool:
    """True when `typestore` defines `msgtype` (and the types it contains) as the default typestore does."""
    from vla_policy_node.msgs.typestore import default_typestore

    reference = default_typestore()
    names = (*_LAYOUTS.get(msgtype, ()), *_TYPES)
    try:
        return msgtype in _LAYOUTS and all(typestore.fielddefs[n] == reference.fielddefs[n] for n in names)
    except KeyError:
        return False


def _string(buf: Any, pos: int) -> tuple[str, int]:
    (length,) = _U32.unpack_from(buf, pos)
    end = pos + 4 + length
    if length < 1 or end > len(buf) or buf[end - 1] != 0:
        raise _Unusual
    return bytes(buf[pos + 4:end - 1]).decode(), end


def _strings(buf: Any, pos: int) -> tuple[tuple[str, ...], int]:
    """A string[]; a topic's joint names are the same bytes in every message, so the last lists read are kept
    (by start offset, compared byte for byte: the same bytes parse to the same names)."""
    pos = (pos + 3) & -4
    recent = _RECENT_NAMES.get(pos, ())
    for data, names in recent:
        if buf[pos:pos + len(data)] == data:
            return names, pos + len(data)
    start = pos
    (size,) = _U32.unpack_from(buf, pos)
    pos += 4
    if pos + size * 5 > len(buf):
        raise _Unusual
    out = []
    for _ in range(size):
        value, pos = _string(buf, (pos + 3) & -4)
        out.append(value)
    names = tuple(out)
    if len(_RECENT_NAMES) >= 64:
        _RECENT_NAMES.clear()
    _RECENT_NAMES[start] = (*recent[-3:], (bytes(buf[start:pos]), names))  # immutable: safe across threads
    return names, pos


def _float64s(buf: Any, pos: int) -> tuple[np.ndarray, int]:
    """A float64[] (no alignment before its length, as rosbags reads it); a view into `buf`."""
    (size,) = _U32.unpack_from(buf, pos)
    pos += 4
    if pos + size * 8 > len(buf):
        raise _Unusual
    if not size:  # velocities and efforts are often left empty: no view to build
        return _EMPTY, pos
    pos = (pos + 7) & -8
    return np.frombuffer(buf, dtype=np.float64, count=size, offset=pos), pos + size * 8


def _skip_float64s(buf: Any, pos: int) -> int:
    """Past a float64[] that is not used, with `_float64s`' checks (rosbags' and numpy's bounds)."""
    (size,) = _U32.unpack_from(buf, pos)
    pos += 4
    if pos + size * 8 > len(buf):
        raise _Unusual
    if size:
        pos = (pos + 7) & -8
    end = pos + size * 8
    if end > len(buf):
        raise _Unusual
    return end


def _header(buf: Any) -> tuple[float, int]:
    sec, nanosec = _TIME.unpack_from(buf, 0)
    _, pos = _string(buf, 8)  # frame_id: decoded only to check it, as rosbags does
    return float(sec) + float(nanosec) * 1e-9, pos


@dataclass(slots=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(slots=True)
class Header:
    stamp: Stamp
    frame_id: str


@dataclass(slots=True)
class ImageMessage:
    """sensor_msgs/Image's fields, as rosbags' dataclass has them."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray  # uint8, a read-only view into the bag's buffer


def image_from_cdr(raw: Any) -> ImageMessage | None:
    """The fields rosbags' deserializer gives a sensor_msgs/Image, without its dataclasses; None for anything
    but plain little-endian data (the caller deserializes it the general way)."""
    try:
        buf = _body(raw)
        sec, nanosec = _TIME.unpack_from(buf, 0)
        frame_id, pos = _string(buf, 8)
        pos = (pos + 3) & -4
        height, width = _IMAGE.unpack_from(buf, pos)
        encoding, pos = _string(buf, pos + 8)
        is_bigendian = buf[pos]
        pos = (pos + 4) & -4  # past the uint8, aligned for step
        step, size = _IMAGE.unpack_from(buf, pos)
        pos += 8
        if pos + size > len(buf) or pos + size + _PADDING < len(buf):
            raise _Unusual
        data = np.frombuffer(buf, dtype=np.uint8, count=size, offset=pos)
        return ImageMessage(Header(Stamp(sec, nanosec), frame_id), height, width, encoding, is_bigendian, step, data)
    except (_Unusual, struct.error, ValueError, UnicodeDecodeError, IndexError):
        return None


@dataclass(slots=True)
class StringMessage:
    """std_msgs/String's one field, as rosbags' dataclass has it."""

    data: str


def string_from_cdr(raw: Any) -> StringMessage | None:
    """The std_msgs/String rosbags' deserializer gives; None for anything but plain little-endian data."""
    try:
        buf = _body(raw)
        data, pos = _string(buf, 0)
        if pos + _PADDING < len(buf):
            raise _Unusual
        return StringMessage(data)
    except (_Unusual, struct.error, UnicodeDecodeError, IndexError):
        return None


def _body(raw: Any) -> memoryview:
    if not _NATIVE_LITTLE or len(raw) < 4 or bytes(raw[:2]) not in _LITTLE_ENDIAN_CDR:
        raise _Unusual
    return memoryview(raw)[4:]


def _finite(values: np.ndarray) -> np.ndarray:
    if not all_finite(values):
        raise _Unusual
    return values


def _rows(rows: list[np.ndarray]) -> np.ndarray:
    """`np.stack(rows)` (a new [N, D] array), without its overhead for the usual single point."""
    return rows[0][None, :].copy() if len(rows) == 1 else np.stack(rows)


def joint_state_from_cdr(raw: Any) -> JointStateData | None:
    """`decode_joint_state(deserialize(raw))` for the plain case; None for anything else."""
    try:
        buf = _body(raw)
        stamp, pos = _header(buf)
        names, pos = _strings(buf, pos)
        position, pos = _float64s(buf, (pos + 3) & -4)
        velocity, pos = _float64s(buf, pos)
        effort, pos = _float64s(buf, pos)
        n = len(names)
        if pos + _PADDING < len(buf) or len(set(names)) != n or position.size != n or velocity.size not in (0, n) \
                or effort.size not in (0, n):
            raise _Unusual
        return JointStateData(stamp, names, _finite(position).copy(),
                              _finite(velocity).copy() if velocity.size else None,
                              effort.copy() if effort.size else None)
    except (_Unusual, struct.error, ValueError, UnicodeDecodeError):
        return None


def joint_trajectory_from_cdr(raw: Any) -> JointTrajectoryData | None:
    """`decode_joint_trajectory(deserialize(raw))` for the plain case; None for anything else."""
    parsed = _trajectory(raw)
    if parsed is None:
        return None
    stamp, names, positions, velocities, times = parsed
    has_velocities = all(v.size for v in velocities)
    return JointTrajectoryData(stamp, names, _rows(positions), _rows(velocities) if has_velocities else None,
                               np.asarray(times))


def trajectory_first_point_from_cdr(raw: Any) -> tuple[tuple[str, ...], np.ndarray] | None:
    """(joint names, first point's positions) of `joint_trajectory_from_cdr(raw)`, None where it is None (the
    same checks of every point), without building the rest: what a controller's command is. The positions are
    a read-only view into `raw`."""
    parsed = _trajectory(raw)
    return None if parsed is None else (parsed[1], parsed[2][0])


def _trajectory(raw: Any) -> tuple[float, tuple[str, ...], list[np.ndarray], list[np.ndarray], list[float]] | None:
    """(stamp, names, positions, velocities, times) per point of a plain JointTrajectory; None otherwise."""
    try:
        buf = _body(raw)
        stamp, pos = _header(buf)
        names, pos = _strings(buf, pos)
        n = len(names)
        pos = (pos + 3) & -4
        (size,) = _U32.unpack_from(buf, pos)
        pos += 4
        if size == 0 or pos + size > len(buf) or len(set(names)) != n:
            raise _Unusual
        positions, velocities, times = [], [], []
        for _ in range(size):
            pos = (pos + 3) & -4
            p, pos = _float64s(buf, pos)
            v, pos = _float64s(buf, pos)
            pos = _skip_float64s(buf, _skip_float64s(buf, pos))  # accelerations, effort: not used
            sec, nanosec = _TIME.unpack_from(buf, pos)
            pos += 8
            if p.size != n or v.size not in (0, n):
                raise _Unusual
            positions.append(_finite(p))
            velocities.append(_finite(v))
            times.append(float(sec) + float(nanosec) * 1e-9)
        if pos + _PADDING < len(buf) or any(b - a <= 0 for a, b in pairwise(times)):
            raise _Unusual
        return stamp, names, positions, velocities, times
    except (_Unusual, struct.error, ValueError, UnicodeDecodeError):
        return None
