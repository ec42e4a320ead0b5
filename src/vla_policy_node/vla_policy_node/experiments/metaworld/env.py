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


def instruction_for(task: str) -> str:
    return INSTRUCTIONS.get(task, task.removesuffix("-v3").replace("-", " "))


@dataclass(frozen=True)
class MetaWorldEnvConfig:
    task: str = "reach-v3"
    camera: str = "behindGripper"  # moves with the hand (mode "track"): the goal appears relative to it
    height: int = 112
    width: int = 112
    max_steps: int = 500  # Meta-World's max_path_length


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
        if config.camera not in cameras:
            raise ValueError(f"Meta-World has no camera {config.camera!r}; cameras: {cameras}")
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
        self._renderer.update_scene(self.env.data, camera=self.config.camera)
        return self._renderer.render().copy()

    def expert_action(self, obs: np.ndarray) -> np.ndarray:
        """The task's scripted policy, clipped to the action space (what the env applies)."""
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
