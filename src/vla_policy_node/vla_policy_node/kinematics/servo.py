"""MoveIt Servo in miniature, for the fake arm driver: a Cartesian twist (or a pose target) of the tool -> joint
velocities through damped least squares on the chain's Jacobian.

The twist is in the chain's base frame (linear m/s of the tool origin, angular rad/s), as MoveIt Servo takes
`delta_twist_cmds` in its command frame. Joint velocities are scaled down together (direction kept) so none
exceeds its limit; the caller integrates and clamps to the joint range. A pose target becomes the twist that
closes the error at `gain` per second, capped at the given speeds, as Servo's pose tracking does.
"""

from __future__ import annotations

import math

import numpy as np

from vla_policy_node.kinematics.rotation import quat_from_matrix
from vla_policy_node.kinematics.urdf import KinematicChain

_EPS = 1e-6


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """3x3 rotation -> axis * angle (radians, angle in [0, pi])."""
    w, x, y, z = quat_from_matrix(rotation)
    if w < 0:
        w, x, y, z = -w, -x, -y, -z
    v = np.array([x, y, z])
    norm = float(np.linalg.norm(v))
    if norm < 1e-12:
        return np.zeros(3)
    return v / norm * (2.0 * math.atan2(norm, w))


class DifferentialIK:
    """Twist -> joint velocities for one chain; `names`: the order of the joint vectors (the robot's joints)."""

    def __init__(self, chain: KinematicChain, names: tuple[str, ...], max_velocity: np.ndarray,
                 damping: float = 1e-6) -> None:
        self.chain = chain
        self.names = tuple(names)
        self.max_velocity = np.asarray(max_velocity, dtype=np.float64)
        self.damping = float(damping)

    def pose(self, q: np.ndarray) -> np.ndarray:
        """Tool pose (4x4) in the base frame."""
        return self.chain.poses(np.asarray(q, dtype=np.float64)[None, :], self.names)[0]

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """[6, n]: d(linear, angular velocity of the tool) / d(joint velocity), by central-free forward
        differences (one batched FK of n + 1 configurations)."""
        q = np.asarray(q, dtype=np.float64)
        n = q.size
        batch = np.repeat(q[None, :], n + 1, axis=0)
        batch[1:] += np.eye(n) * _EPS
        poses = self.chain.poses(batch, self.names)
        base = poses[0]
        jac = np.zeros((6, n))
        jac[:3] = ((poses[1:, :3, 3] - base[:3, 3]) / _EPS).T
        for i in range(n):
            delta = poses[i + 1, :3, :3] @ base[:3, :3].T
            jac[3:, i] = np.array([delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0],
                                   delta[1, 0] - delta[0, 1]]) / (2.0 * _EPS)
        return jac

    def joint_velocity(self, q: np.ndarray, twist: np.ndarray) -> np.ndarray:
        """Joint velocities that best give `twist` [vx, vy, vz, wx, wy, wz], scaled so each is within its limit."""
        jac = self.jacobian(q)
        jj = jac @ jac.T + self.damping * np.eye(6)
        qdot = jac.T @ np.linalg.solve(jj, np.asarray(twist, dtype=np.float64))
        ratio = float(np.max(np.abs(qdot) / self.max_velocity)) if qdot.size else 0.0
        return qdot / ratio if ratio > 1.0 else qdot

    def twist_to(self, q: np.ndarray, target: np.ndarray, gain: float, max_linear: float,
                 max_angular: float) -> np.ndarray:
        """The twist towards a target pose (4x4): error * gain, each part capped at its speed."""
        pose = self.pose(q)
        linear = (target[:3, 3] - pose[:3, 3]) * gain
        angular = rotation_vector(target[:3, :3] @ pose[:3, :3].T) * gain
        for part, cap in ((linear, max_linear), (angular, max_angular)):
            norm = float(np.linalg.norm(part))
            if norm > cap > 0:
                part *= cap / norm
        return np.concatenate([linear, angular])
