"""Inverse kinematics for the tool site: position + "pointing down", by damped least squares on MuJoCo's
Jacobians, with a pull toward a rest pose in the redundant direction. Works on its own MjData (kinematics only),
so it never disturbs the simulation it plans for."""

from __future__ import annotations

import mujoco
import numpy as np

from vla_policy_node.sim.scene import ARM_JOINTS, TOOL_SITE

DOWN = np.array([0.0, 0.0, -1.0])


class ToolIK:
    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self._qpos = np.array([model.jnt_qposadr[model.joint(j).id] for j in ARM_JOINTS])
        self._dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in ARM_JOINTS])
        ids = [model.joint(j).id for j in ARM_JOINTS]
        self.lower, self.upper = model.jnt_range[ids, 0].copy(), model.jnt_range[ids, 1].copy()
        self._site = model.site(TOOL_SITE).id

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool position and tool z axis at joint positions q."""
        self.data.qpos[self._qpos] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # the Jacobians need the com-based quantities too
        xmat = self.data.site_xmat[self._site].reshape(3, 3)
        return self.data.site_xpos[self._site].copy(), xmat[:, 2].copy()

    def solve(self, target: np.ndarray, q0: np.ndarray, rest: np.ndarray | None = None, *, iterations: int = 200,
              damping: float = 1e-2, tolerance: float = 1e-4) -> tuple[np.ndarray, float]:
        """Joint positions putting the tool at `target` pointing down, starting from q0; (q, position error)."""
        q = np.asarray(q0, dtype=np.float64).copy()
        rest = q.copy() if rest is None else np.asarray(rest, dtype=np.float64)
        jacp = np.zeros((3, self.model.nv))
        jacr = np.zeros((3, self.model.nv))
        error = np.inf
        for _ in range(iterations):
            pos, z_axis = self.forward(q)
            e_pos = target - pos
            e_rot = np.cross(z_axis, DOWN)  # small-angle rotation taking the tool axis onto "down"
            error = float(np.linalg.norm(e_pos))
            if error < tolerance and np.linalg.norm(e_rot) < 1e-3:
                break
            mujoco.mj_jacSite(self.model, self.data, jacp, jacr, self._site)
            jac = np.vstack([jacp[:, self._dof], 0.5 * jacr[:, self._dof]])
            err = np.concatenate([e_pos, 0.5 * e_rot])
            jjt = jac @ jac.T + damping * np.eye(6)
            step = jac.T @ np.linalg.solve(jjt, err)
            null = np.eye(len(q)) - np.linalg.pinv(jac) @ jac
            step += null @ (0.1 * (rest - q))
            q = np.clip(q + np.clip(step, -0.3, 0.3), self.lower, self.upper)
        return q, error
