"""Rotation math, written once: ROS's fixed-axis roll-pitch-yaw (R = Rz(yaw) Ry(pitch) Rx(roll), URDF's rpy too),
quaternions as (w, x, y, z), 3x3 matrices. Plain floats for the per-tick limiter (no scipy on the tick path),
numpy for matrices. Used by the safety filter, URDF kinematics, command and tf messages and the sim's URDF.
"""

from __future__ import annotations

import math

import numpy as np

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


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF's rpy: fixed-axis rotations about x, then y, then z, i.e. Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def skew_matrix(axis: np.ndarray) -> np.ndarray:
    x, y, z = axis
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation about a unit `axis` by `angle` (Rodrigues)."""
    k = skew_matrix(axis)
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def quat_from_matrix(rotation: np.ndarray) -> Quat:
    """3x3 rotation -> unit quaternion (w, x, y, z), w >= 0 away from 180 degrees."""
    m = rotation
    w = 0.5 * np.sqrt(max(1.0 + m[0, 0] + m[1, 1] + m[2, 2], 1e-12))
    x = (m[2, 1] - m[1, 2]) / (4 * w)
    y = (m[0, 2] - m[2, 0]) / (4 * w)
    z = (m[1, 0] - m[0, 1]) / (4 * w)
    if w < 1e-3:  # near 180 degrees: the trace formula is ill-conditioned, use the largest diagonal
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0, 0.0, 0.0]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
        w = (m[k, j] - m[j, k]) / s
        x, y, z = q
    return (float(w), float(x), float(y), float(z))


def rpy_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """3x3 rotation -> ROS fixed-axis roll, pitch, yaw (through a quaternion, like the safety filter)."""
    return rpy_from_quat(quat_from_matrix(rotation))
