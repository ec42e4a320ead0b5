"""Just enough rotation math for the Cartesian limiter, in plain floats (no scipy on the tick path).

Euler angles are ROS's fixed-axis roll-pitch-yaw (R = Rz(yaw) Ry(pitch) Rx(roll)); quaternions are (w, x, y, z).
"""

from __future__ import annotations

import math

Quat = tuple[float, float, float, float]


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> Quat:
    cr, sr = math.cos(roll * 0.5), math.sin(roll * 0.5)
    cp, sp = math.cos(pitch * 0.5), math.sin(pitch * 0.5)
    cy, sy = math.cos(yaw * 0.5), math.sin(yaw * 0.5)
    return (
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    )


def rpy_from_quat(q: Quat) -> tuple[float, float, float]:
    w, x, y, z = q
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (w * y - z * x))))
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return roll, pitch, yaw


def quat_mul(a: Quat, b: Quat) -> Quat:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


def quat_conj(q: Quat) -> Quat:
    return (q[0], -q[1], -q[2], -q[3])


def rotation_angle(a: Quat, b: Quat) -> float:
    """Angle (rad, in [0, pi]) of the rotation taking orientation a to orientation b."""
    w, x, y, z = quat_mul(quat_conj(a), b)
    return 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), abs(w))


def rotate_towards(a: Quat, b: Quat, max_angle: float) -> tuple[Quat, bool]:
    """Orientation reached by turning from a towards b by at most max_angle (shortest way); (q, limited)."""
    w, x, y, z = quat_mul(quat_conj(a), b)
    if w < 0.0:
        w, x, y, z = -w, -x, -y, -z
    norm_v = math.sqrt(x * x + y * y + z * z)
    angle = 2.0 * math.atan2(norm_v, w)
    if angle <= max_angle or norm_v == 0.0:
        return b, False
    half = 0.5 * max_angle
    s = math.sin(half) / norm_v
    step = (math.cos(half), x * s, y * s, z * s)
    return quat_mul(a, step), True
