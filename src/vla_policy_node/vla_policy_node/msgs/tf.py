"""tf2_msgs/TFMessage from 4x4 transforms, as robot_state_publisher sends them on /tf."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from vla_policy_node.kinematics.rotation import quat_from_matrix
from vla_policy_node.msgs.fields import MessageFactory
from vla_policy_node.msgs.stamps import make_header

TF_MESSAGE = "tf2_msgs/msg/TFMessage"
TRANSFORM_STAMPED = "geometry_msgs/msg/TransformStamped"


def encode_transform(new: MessageFactory, parent: str, child: str, matrix: np.ndarray, stamp: float) -> Any:
    """TransformStamped: `matrix` maps child-frame coordinates into `parent` (the pose of child in parent)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise ValueError(f"transform {parent} -> {child} must be a finite 4x4 matrix, got shape {m.shape}")
    w, x, y, z = quat_from_matrix(m[:3, :3])
    return new(
        TRANSFORM_STAMPED,
        header=make_header(new, stamp, parent),
        child_frame_id=child,
        transform=new(
            "geometry_msgs/msg/Transform",
            translation=new("geometry_msgs/msg/Vector3", x=float(m[0, 3]), y=float(m[1, 3]), z=float(m[2, 3])),
            rotation=new("geometry_msgs/msg/Quaternion", x=float(x), y=float(y), z=float(z), w=float(w)),
        ),
    )


def encode_tf_message(new: MessageFactory, transforms: Iterable[tuple[str, str, np.ndarray]], stamp: float) -> Any:
    """(parent, child, 4x4) triples -> one TFMessage, all stamped `stamp`."""
    return new(TF_MESSAGE, transforms=[encode_transform(new, p, c, m, stamp) for p, c, m in transforms])
