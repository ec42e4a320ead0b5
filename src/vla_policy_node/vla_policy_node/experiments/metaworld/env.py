"""One Meta-World MT1 task as an evaluation bench: seeded layouts, one camera rendered offscreen, the scripted expert.

Layouts come from Meta-World's own MT1 benchmark (the documented `MT1(task).train_tasks` + `env.set_task` path),
so goal and object positions are drawn exactly as people who report MT1 numbers draw them. MT1 samples 50
layouts per benchmark seed; layout `k` is task `k % 50` of `MT1(task, seed=k // 50)`, which gives as many
disjoint, reproducible layouts as an experiment needs (demonstrations and evaluation use different `k`).

Rendering goes through our own `mujoco.Renderer` rather than gymnasium's: one GL context per env (gymnasium's
renderers of a second env instance in one process render black under EGL here), and without shadows, reflections
and multisampling, which cost ~150 ms per frame on a CPU (Mesa) and ~0.5 ms without. metaworld is imported
lazily, so the package imports without it (the `metaworld` extra installs it).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

LAYOUTS_PER_BENCHMARK = 50  # metaworld's _N_GOALS: MT1 layouts per benchmark seed
STATE_DIM = 4  # hand xyz + finger opening: the leading entries of Meta-World's 39-D observation
# privileged scene state for the auxiliary training loss only (never the policy's input): the goal position
# (observation[36:39]) and the first object's position (observation[4:7])
ENV_STATE_NAMES = ("goal_x", "goal_y", "goal_z", "object_x", "object_y", "object_z")
MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")

# What the policy is told; tasks not listed get their name in words ("button-press-topdown-v3" -> "button press
# topdown").
INSTRUCTIONS: dict[str, str] = {
    "reach-v3": "reach the red goal",
    "push-v3": "push the puck to the green goal",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-v3": "press the button",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "door-open-v3": "open the door",
    "window-open-v3": "open the window",
    "window-close-v3": "close the window",
    "peg-insert-side-v3": "insert the peg into the hole",
}


@dataclass(frozen=True)
class FreeView:
    """A camera of our own (MuJoCo's free camera), rendered beside Meta-World's named ones; nothing in the
    simulation changes. Pixel-based Meta-World work commonly re-aims a camera the same way (e.g. corner2)."""

    lookat: tuple[float, float, float]
    azimuth: float  # degrees
    elevation: float  # degrees (negative: looking down)
    distance: float  # m from lookat


# "front": from beyond the table's far edge back at the robot, slightly from above. The image plane holds the
# hand's x and z, so a goal anywhere in reach/pick-place's goal box (x +-10 cm, z 5-30 cm) shows at its own
# place, as a ~7 px sphere at 128 px, in front of the arm rather than on it; only y (10 cm of range) is depth.
# Meta-World's own cameras show reach's goal as 2-3 px on the arm's red (behindGripper, corner) or off to the
# side (topview, corner2/3).
FREE_VIEWS: dict[str, FreeView] = {
    "front": FreeView(lookat=(0.0, 0.75, 0.12), azimuth=270.0, elevation=-30.0, distance=0.75),
    # closer and steeper: pick-place's puck (~6x10 px) stands clear of the goal sphere instead of behind it
    "front_high": FreeView(lookat=(0.0, 0.72, 0.1), azimuth=270.0, elevation=-50.0, distance=0.6),
}


def instruction_for(task: str) -> str:
    return INSTRUCTIONS.get(task, task.removesuffix("-v3").replace("-", " "))


@dataclass(frozen=True)
class MetaWorldEnvConfig:
    task: str = "reach-v3"
    camera: str = "behindGripper"  # moves with the hand (mode "track"): the goal appears relative to it; or FREE_VIEWS
    height: int = 112
    width: int = 112
    max_steps: int = 500  # Meta-World's max_path_length


def _free_camera(mujoco: Any, view: FreeView) -> Any:
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = view.lookat
    camera.azimuth, camera.elevation, camera.distance = view.azimuth, view.elevation, view.distance
    return camera


class MetaWorldEnv:
    """`reset(layout)` -> observation; `step(action)` -> (observation, success); `render()` -> HxWx3 uint8.

    Observations are Meta-World's full 39-D vectors (the expert needs the goal); what a policy may see is
    `state(obs)` and the image.
    """

    def __init__(self, config: MetaWorldEnvConfig) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import (metaworld imports it)
        import metaworld
        import mujoco
        from metaworld.policies import ENV_POLICY_MAP

        if config.task not in metaworld.MT1.ENV_NAMES:
            raise ValueError(f"unknown Meta-World task {config.task!r}; MT1 tasks: {sorted(metaworld.MT1.ENV_NAMES)}")
        self.config = config
        self._mujoco = mujoco
        self._mt1 = metaworld.MT1
        self._benchmarks: dict[int, Any] = {}
        self.env = self._benchmark(0).train_classes[config.task]()
        model = self.env.model
        cameras = [model.camera(i).name for i in range(model.ncam)]
        if config.camera not in cameras and config.camera not in FREE_VIEWS:
            raise ValueError(f"Meta-World has no camera {config.camera!r}; cameras: {cameras + sorted(FREE_VIEWS)}")
        self._camera: Any = _free_camera(mujoco, FREE_VIEWS[config.camera]) if config.camera in FREE_VIEWS \
            else config.camera
        model.vis.quality.offsamples = 0  # before the renderer makes its GL buffers
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, config.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, config.height)
        self._renderer = mujoco.Renderer(model, config.height, config.width)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self._renderer.scene.flags[flag] = 0
        self._expert = ENV_POLICY_MAP[config.task]()
        self.instruction = instruction_for(config.task)
        self.steps = 0

    def _benchmark(self, seed: int) -> Any:
        if seed not in self._benchmarks:
            self._benchmarks[seed] = self._mt1(self.config.task, seed=seed)
        return self._benchmarks[seed]

    @property
    def dt(self) -> float:
        return float(self.env.dt)

    def reset(self, layout: int) -> np.ndarray:
        if layout < 0:
            raise ValueError(f"layouts are numbered from 0, got {layout}")
        tasks = self._benchmark(layout // LAYOUTS_PER_BENCHMARK).train_tasks
        self.env.set_task(tasks[layout % LAYOUTS_PER_BENCHMARK])
        # Meta-World's reset reads the previous episode's object pose once before clearing the simulation (a
        # few microns of goal-marker height in push-v3); start from a clean state so a layout renders the same
        # whatever ran before it.
        self._mujoco.mj_resetData(self.env.model, self.env.data)
        obs, _ = self.env.reset()
        self.steps = 0
        return np.asarray(obs, np.float64)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        """Apply one 4-D action (clipped to [-1, 1], as Meta-World itself does); True once the task is solved."""
        obs, _, _, _, info = self.env.step(np.clip(np.asarray(action, np.float32), -1.0, 1.0))
        self.steps += 1
        return np.asarray(obs, np.float64), bool(info["success"])

    def render(self) -> np.ndarray:
        self._renderer.update_scene(self.env.data, camera=self._camera)
        return self._renderer.render().copy()

    def expert_action(self, obs: np.ndarray, *, aim_fingers: bool = False) -> np.ndarray:
        """The task's scripted policy, clipped to the action space (what the env applies).

        aim_fingers: the policy is shown the fingers' centre as its hand position. Reach's scripted policy moves
        the hand body onto the goal, but success is judged at the fingers' centre (`tcp_center`), 4.5 cm below
        it: the scripted policy settles 4.5 cm from the goal, on the edge of the 5 cm success ball, so a student
        that imitates it to within a centimetre fails about half the time. Aimed by the fingers it settles on
        the goal. Only for tasks whose policy moves the hand to a point (reach)."""
        if aim_fingers:
            obs = np.array(obs, np.float64)
            obs[:3] = self.env.tcp_center
        with warnings.catch_warnings():  # its gains exceed 1 by design ("may be too high", then clipped)
            warnings.simplefilter("ignore", UserWarning)
            action = self._expert.get_action(obs)
        return np.clip(np.asarray(action, np.float64), -1.0, 1.0)

    @staticmethod
    def state(obs: np.ndarray) -> np.ndarray:
        """The robot part of an observation: hand xyz (m) and finger opening ([0, 1])."""
        return np.asarray(obs[:STATE_DIM], np.float64)

    @staticmethod
    def env_state(obs: np.ndarray) -> np.ndarray:
        """Goal and first-object positions (ENV_STATE_NAMES): training supervision only, as the sim arm's
        /sim_arm/task_state."""
        return np.concatenate([obs[36:39], obs[4:7]]).astype(np.float64)

    def close(self) -> None:
        self._renderer.close()
        self.env.close()
