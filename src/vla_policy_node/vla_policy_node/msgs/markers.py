"""rviz markers of what the policy intends to do: the predicted end-effector (or any 3-D) path of a chunk.

One MarkerArray with a LINE_STRIP (the path) and a SPHERE_LIST (the waypoints), so rviz shows both the
shape and the timing density of a chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_policy_node.msgs.fields import MessageFactory, float_array
from vla_policy_node.msgs.stamps import make_duration, make_header

MARKER = "visualization_msgs/msg/Marker"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
LINE_STRIP = 4
SPHERE_LIST = 7
ADD = 0
DELETEALL = 3


def encode_path_markers(
    new: MessageFactory,
    points: np.ndarray,
    *,
    stamp: float = 0.0,
    frame_id: str = "base_link",
    ns: str = "vla_path",
    marker_id: int = 0,
    rgba: Sequence[float] = (0.1, 0.6, 1.0, 1.0),
    line_width: float = 0.005,
    sphere_diameter: float = 0.015,
    lifetime: float = 0.0,
) -> Any:
    """points [N, 3] -> MarkerArray[LINE_STRIP id=marker_id, SPHERE_LIST id=marker_id+1]."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise ValueError(f"points must be finite [N, 3], got {pts.shape}")
    if len(rgba) != 4:
        raise ValueError("rgba needs 4 values")
    geometry_points = [new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z)) for x, y, z in pts]
    color = new("std_msgs/msg/ColorRGBA", r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))
    identity = new(
        "geometry_msgs/msg/Pose", orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)
    )

    def marker(marker_type: int, offset: int, scale: tuple[float, float, float]) -> Any:
        return new(
            MARKER,
            header=make_header(new, stamp, frame_id),
            ns=ns,
            id=marker_id + offset,
            type=marker_type,
            action=ADD,
            pose=identity,
            scale=new("geometry_msgs/msg/Vector3", x=scale[0], y=scale[1], z=scale[2]),
            color=color,
            lifetime=make_duration(new, lifetime),
            points=geometry_points,
        )

    return new(
        MARKER_ARRAY,
        markers=[
            marker(LINE_STRIP, 0, (line_width, 0.0, 0.0)),
            marker(SPHERE_LIST, 1, (sphere_diameter, sphere_diameter, sphere_diameter)),
        ],
    )


def encode_delete_markers(new: MessageFactory, *, ns: str = "vla_path", frame_id: str = "base_link") -> Any:
    """A MarkerArray that clears every marker in `ns` (e.g. when the policy pauses)."""
    return new(MARKER_ARRAY, markers=[new(MARKER, header=make_header(new, 0.0, frame_id), ns=ns, action=DELETEALL)])


def decode_marker_points(msg: Any) -> dict[tuple[str, int], tuple[int, np.ndarray]]:
    """(ns, id) -> (marker type, points [N, 3]) for every marker of a MarkerArray."""
    out = {}
    for marker in msg.markers:
        pts = [[p.x, p.y, p.z] for p in marker.points]
        array = float_array(np.asarray(pts).reshape(-1), "marker points", MARKER_ARRAY).reshape(-1, 3)
        out[(str(marker.ns), int(marker.id))] = (int(marker.type), array)
    return out
