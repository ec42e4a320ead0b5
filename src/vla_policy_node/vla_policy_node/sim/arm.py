"""ArmSim: the MuJoCo tabletop stepped on its own time, with joint-position servos and offscreen cameras.

Deterministic: the same layout, initial pose and command sequence give the same trajectory and images (MuJoCo
is deterministic on one machine; nothing here draws random numbers). Rendering is offscreen; set
`MUJOCO_GL=egl` (headless GPU or Mesa) or `osmesa` before mujoco is first imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco

from vla_policy_node.sim.scene import ARM_JOINTS, FINGER_RANGE, TOOL_SITE, SceneConfig, build_mjcf

GRIPPER_OPEN = 0.04  # the reach task's opening (its shipped checkpoint was trained with it)
GRIPPER_WIDE = FINGER_RANGE  # fully open: pick-and-place grasps from here


@dataclass(frozen=True)
class BlockPose:
    x: float
    y: float
    yaw: float = 0.0


@dataclass(frozen=True)
class Layout:
    """Where each colored block and pad lies on the table (colors not listed are parked off the table); a pad's
    yaw is ignored (pads are axis-aligned squares)."""

    blocks: dict[str, BlockPose] = field(default_factory=dict)
    pads: dict[str, BlockPose] = field(default_factory=dict)


class ArmSim:
    """cameras: name -> (height, width) of the images `render` returns."""

    def __init__(self, cameras: dict[str, tuple[int, int]], config: SceneConfig | None = None) -> None:
        self.config = config = config or SceneConfig()
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(config))
        self.data = mujoco.MjData(self.model)
        for name, (h, w) in cameras.items():
            if max(h, w) > config.max_image:
                raise ValueError(f"camera {name}: {h}x{w} exceeds the offscreen buffer ({config.max_image} px)")
        self.cameras = dict(cameras)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        m = self.model
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self._arm_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self._finger_qpos = np.array([m.jnt_qposadr[m.joint(f).id] for f in ("finger_left", "finger_right")])
        self._arm_act = np.array([m.actuator(j).id for j in ARM_JOINTS])
        self._finger_act = np.array([m.actuator(f).id for f in ("finger_left", "finger_right")])
        self._finger_geoms = {int(m.body_geomadr[m.body(f).id]) for f in ("finger_left", "finger_right")}
        self._pad_parked = {c: m.body(f"pad_{c}").pos.copy() for c in config.pads}
        self.arm_lower = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS], 0].copy()
        self.arm_upper = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS], 1].copy()
        self.layout = Layout()

    # ------------------------------------------------------------------------------------------------ state
    def reset(self, layout: Layout, arm: np.ndarray, gripper: float = GRIPPER_OPEN) -> None:
        """Place the blocks, put the arm at `arm` at rest, and hold it there."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        half = self.config.block_half
        for i, color in enumerate(self.config.colors):
            pose = layout.blocks.get(color, BlockPose(2.0 + 0.2 * i, 2.0, 0.0))  # parked far off the table
            adr = m.jnt_qposadr[m.joint(f"block_{color}_free").id]
            d.qpos[adr: adr + 3] = (pose.x, pose.y, half)
            d.qpos[adr + 3: adr + 7] = (np.cos(pose.yaw / 2), 0.0, 0.0, np.sin(pose.yaw / 2))
        for color, parked in self._pad_parked.items():
            pad = layout.pads.get(color)
            m.body(f"pad_{color}").pos[:] = parked if pad is None else (pad.x, pad.y, parked[2])
        d.qpos[self._arm_qpos] = np.clip(arm, self.arm_lower, self.arm_upper)
        d.qpos[self._finger_qpos] = gripper
        self.layout = layout
        self.set_targets(arm, gripper)
        mujoco.mj_forward(m, d)

    def set_targets(self, arm: np.ndarray, gripper: float | None = None) -> None:
        self.data.ctrl[self._arm_act] = np.clip(np.asarray(arm, dtype=np.float64), self.arm_lower, self.arm_upper)
        if gripper is not None:
            self.data.ctrl[self._finger_act] = float(np.clip(gripper, 0.0, GRIPPER_WIDE))

    def advance(self, seconds: float) -> None:
        """Step the physics by `seconds` (rounded to whole timesteps)."""
        steps = round(seconds / self.model.opt.timestep)
        if steps > 0:
            mujoco.mj_step(self.model, self.data, nstep=steps)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def arm_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def arm_velocities(self) -> np.ndarray:
        return self.data.qvel[self._arm_dof].copy()

    def arm_targets(self) -> np.ndarray:
        return self.data.ctrl[self._arm_act].copy()

    def gripper_position(self) -> float:
        return float(self.data.qpos[self._finger_qpos].mean())

    def tool_position(self) -> np.ndarray:
        return self.data.site(TOOL_SITE).xpos.copy()

    def block_position(self, color: str) -> np.ndarray:
        return self.data.body(f"block_{color}").xpos.copy()

    def block_speed(self, color: str) -> float:
        """Linear speed (m/s) of the block's centre."""
        adr = self.model.jnt_dofadr[self.model.joint(f"block_{color}_free").id]
        return float(np.linalg.norm(self.data.qvel[adr: adr + 3]))

    def pad_position(self, color: str) -> np.ndarray:
        """Centre of the pad's top face."""
        return self.data.body(f"pad_{color}").xpos + np.array([0.0, 0.0, self.config.pad_height / 2])

    def fingers_touch(self, color: str) -> bool:
        """Whether a finger is in contact with the block (it is held, or being grasped or released)."""
        block = int(self.model.body_geomadr[self.model.body(f"block_{color}").id])
        for i in range(self.data.ncon):
            pair = {int(self.data.contact[i].geom1), int(self.data.contact[i].geom2)}
            if block in pair and pair & self._finger_geoms:
                return True
        return False

    # -------------------------------------------------------------------------------------------- rendering
    def render(self, camera: str) -> np.ndarray:
        """HxWx3 uint8 RGB from the named camera (the MJCF camera of the same name)."""
        h, w = self.cameras[camera]
        renderer = self._renderers.get((h, w))
        if renderer is None:
            renderer = self._renderers[(h, w)] = mujoco.Renderer(self.model, h, w)
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def project(self, camera: str, point: np.ndarray) -> np.ndarray:
        """(u, v) pixel coordinates of a world point in `camera`'s image (u right, v down)."""
        h, w = self.cameras[camera]
        cam = self.data.camera(camera)
        rel = cam.xmat.reshape(3, 3).T @ (np.asarray(point) - cam.xpos)  # camera frame: x right, y up, -z ahead
        f = 0.5 * h / np.tan(np.deg2rad(self.model.cam_fovy[self.model.camera(camera).id]) / 2)
        return np.array([w / 2 + f * rel[0] / -rel[2], h / 2 - f * rel[1] / -rel[2]])

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> ArmSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
