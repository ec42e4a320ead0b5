"""geometry_msgs TwistStamped / PoseStamped / PointStamped <-> numpy (MoveIt Servo's delta_twist_cmds and
pose_target_cmds; PointStamped for points such as the simulated task's target)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, float_array, get_field
from vla_policy_node.msgs.stamps import header_stamp, make_header

TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"


@dataclass(frozen=True)
class TwistData:
    stamp: float
    frame_id: str
    linear: np.ndarray  # [3] m/s
    angular: np.ndarray  # [3] rad/s


@dataclass(frozen=True)
class PoseData:
    stamp: float
    frame_id: str
    position: np.ndarray  # [3] m
    orientation: np.ndarray  # [4] unit quaternion x, y, z, w


@dataclass(frozen=True)
class PointData:
    stamp: float
    frame_id: str
    point: np.ndarray  # [3] m


def _vector3(new: MessageFactory, values: Any, msgtype: str, what: str) -> Any:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be 3 finite values, got {values!r}")
    return new(msgtype, x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _xyz(obj: Any, what: str, msgtype: str) -> np.ndarray:
    return float_array([obj.x, obj.y, obj.z], what, msgtype)


def encode_twist_stamped(
    new: MessageFactory, linear: Any, angular: Any, *, stamp: float = 0.0, frame_id: str = ""
) -> Any:
    twist = new(
        "geometry_msgs/msg/Twist",
        linear=_vector3(new, linear, "geometry_msgs/msg/Vector3", "linear"),
        angular=_vector3(new, angular, "geometry_msgs/msg/Vector3", "angular"),
    )
    return new(TWIST_STAMPED, header=make_header(new, stamp, frame_id), twist=twist)


def decode_twist_stamped(msg: Any) -> TwistData:
    twist = get_field(msg, "twist", TWIST_STAMPED)
    return TwistData(
        stamp=header_stamp(msg),
        frame_id=str(msg.header.frame_id),
        linear=_xyz(twist.linear, "twist.linear", TWIST_STAMPED),
        angular=_xyz(twist.angular, "twist.angular", TWIST_STAMPED),
    )


def encode_pose_stamped(
    new: MessageFactory, position: Any, orientation_xyzw: Any, *, stamp: float = 0.0, frame_id: str = ""
) -> Any:
    q = np.asarray(orientation_xyzw, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(q)) if q.shape == (4,) else 0.0
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"orientation must be a non-zero quaternion (x, y, z, w), got {orientation_xyzw!r}")
    q = q / norm
    pose = new(
        "geometry_msgs/msg/Pose",
        position=_vector3(new, position, "geometry_msgs/msg/Point", "position"),
        orientation=new("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )
    return new(POSE_STAMPED, header=make_header(new, stamp, frame_id), pose=pose)


def decode_pose_stamped(msg: Any) -> PoseData:
    pose = get_field(msg, "pose", POSE_STAMPED)
    o = pose.orientation
    q = float_array([o.x, o.y, o.z, o.w], "pose.orientation", POSE_STAMPED)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise MessageError("bad_quaternion", "orientation quaternion has zero length", POSE_STAMPED)
    return PoseData(
        stamp=header_stamp(msg),
        frame_id=str(msg.header.frame_id),
        position=_xyz(pose.position, "pose.position", POSE_STAMPED),
        orientation=q / norm,
    )


def encode_point_stamped(new: MessageFactory, point: Any, *, stamp: float = 0.0, frame_id: str = "") -> Any:
    return new(POINT_STAMPED, header=make_header(new, stamp, frame_id),
               point=_vector3(new, point, "geometry_msgs/msg/Point", "point"))


def decode_point_stamped(msg: Any) -> PointData:
    point = get_field(msg, "point", POINT_STAMPED)
    return PointData(stamp=header_stamp(msg), frame_id=str(msg.header.frame_id),
                     point=_xyz(point, "point", POINT_STAMPED))
