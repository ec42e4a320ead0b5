"""sensor_msgs/CameraInfo <-> pinhole intrinsics, the way image_pipeline reads them.

K is the 3x3 intrinsic matrix (row-major), R the identity for a monocular camera, P = [K | 0]. Distortion
coefficients travel as they are, under the model name ROS uses ("plumb_bob" for the 5 Brown-Conrady
coefficients that RealSense reports, "equidistant" for Kannala-Brandt).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, float_array
from vla_policy_node.msgs.stamps import make_header

CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one image stream (pixels), plus its distortion model and coefficients."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    coefficients: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive and finite, got fx={self.fx} fy={self.fy}")
        object.__setattr__(self, "coefficients", tuple(float(c) for c in self.coefficients))

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def p(self) -> np.ndarray:
        return np.hstack([self.k, np.zeros((3, 1))])


def encode_camera_info(new: MessageFactory, intrinsics: CameraIntrinsics, *, stamp: float = 0.0,
                       frame_id: str = "") -> Any:
    """CameraInfo for an unrectified monocular stream (R = I, P = [K | 0], no binning or ROI)."""
    return new(
        CAMERA_INFO,
        header=make_header(new, stamp, frame_id),
        height=intrinsics.height,
        width=intrinsics.width,
        distortion_model=intrinsics.distortion_model,
        d=np.array(intrinsics.coefficients, dtype=np.float64),
        k=intrinsics.k.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=intrinsics.p.reshape(-1),
    )


def decode_camera_info(msg: Any) -> CameraIntrinsics:
    """CameraInfo -> intrinsics; MessageError when K is not a pinhole matrix with positive focal lengths."""
    k = float_array(msg.k, "k", CAMERA_INFO)
    if k.size != 9:
        raise MessageError("bad_size", f"k has {k.size} values, expected 9", CAMERA_INFO)
    d: Sequence[float] = float_array(msg.d, "d", CAMERA_INFO).tolist()
    try:
        return CameraIntrinsics(int(msg.width), int(msg.height), float(k[0]), float(k[4]), float(k[2]), float(k[5]),
                                str(msg.distortion_model), tuple(d))
    except ValueError as error:
        raise MessageError("bad_value", str(error), CAMERA_INFO) from None
