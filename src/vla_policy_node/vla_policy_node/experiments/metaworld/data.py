"""Scripted-expert episodes on Meta-World as training samples for the project's trainer.

Sample t of an episode is what the policy sees before step t (the camera image and the robot state: hand xyz
and finger opening, never the object or goal positions) with the expert's actions for steps t .. t+H-1; steps
past the episode's end are padded and marked invalid, so the loss ignores them. Each sample also carries the
goal and object positions as `env_state`, supervision for the auxiliary loss only (the policy never gets them),
and `frame_in_episode` says which step it is (start frames can be weighted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from vla_policy_node.experiments.metaworld.env import MetaWorldEnv
from vla_policy_node.train.data import Sample


@dataclass(frozen=True)
class ExpertEpisode:
    layout: int
    images: list[np.ndarray]  # [T] before each step
    states: list[np.ndarray]  # [T] robot state before each step
    actions: list[np.ndarray]  # [T] the action taken at each step
    success: bool
    env_states: list[np.ndarray] = field(default_factory=list)  # [T] goal + object positions before each step


@dataclass
class DemoStats:
    layouts: list[int] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    frame_in_episode: list[int] = field(default_factory=list)  # per kept sample: its step in its episode

    def summary(self) -> dict[str, float | int]:
        return {"episodes": len(self.layouts), "expert_successes": int(sum(self.successes)),
                "mean_length": float(np.mean(self.lengths)) if self.lengths else 0.0}


def expert_episode(env: MetaWorldEnv, layout: int, *, aim_fingers: bool = False, after_success: int = 0,
                   ) -> ExpertEpisode:
    """Run the scripted expert on one layout until it succeeds or the step limit, recording what a policy sees.

    aim_fingers: see `MetaWorldEnv.expert_action`. after_success: steps the expert goes on after its first
    success (within the step limit), so the student also learns to settle where the task is solved rather
    than seeing nothing past the threshold (a student that arrives slightly off then drifts)."""
    obs = env.reset(layout)
    images: list[np.ndarray] = []
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    env_states: list[np.ndarray] = []
    success = False
    solved_at: int | None = None
    while env.steps < env.config.max_steps and (solved_at is None or env.steps < solved_at + after_success):
        images.append(env.render())
        states.append(env.state(obs))
        env_states.append(env.env_state(obs))
        action = env.expert_action(obs, aim_fingers=aim_fingers)
        actions.append(action)
        obs, solved = env.step(action)
        success = success or solved
        if success and solved_at is None:
            solved_at = env.steps
    return ExpertEpisode(layout, images, states, actions, success, env_states)


def episode_samples(episode: ExpertEpisode, *, horizon: int, camera: str, instruction: str, tag: str) -> list[Sample]:
    """One sample per step: its observation and the next `horizon` expert actions (zero-padded, masked)."""
    actions = np.asarray(episode.actions, np.float64)
    steps, dim = actions.shape
    padded = np.concatenate([actions, np.zeros((horizon, dim))])
    samples = []
    for t in range(steps):
        valid = np.arange(t, t + horizon) < steps
        samples.append(Sample(images={camera: episode.images[t]}, state=episode.states[t],
                              actions=padded[t:t + horizon].copy(), instruction=instruction, tag=tag, valid=valid,
                              env_state=episode.env_states[t] if episode.env_states else None))
    return samples


def demonstrations(env: MetaWorldEnv, layouts: Iterable[int], *, horizon: int, camera: str, tag: str,
                   keep_failures: bool = False, aim_fingers: bool = False, after_success: int = 0,
                   ) -> tuple[list[Sample], DemoStats]:
    """Expert episodes on `layouts` as samples; failed episodes are left out unless `keep_failures`."""
    samples: list[Sample] = []
    stats = DemoStats()
    for layout in layouts:
        episode = expert_episode(env, layout, aim_fingers=aim_fingers, after_success=after_success)
        stats.layouts.append(layout)
        stats.successes.append(episode.success)
        stats.lengths.append(len(episode.actions))
        if episode.success or keep_failures:
            samples += episode_samples(episode, horizon=horizon, camera=camera, instruction=env.instruction, tag=tag)
            stats.frame_in_episode += list(range(len(episode.actions)))
    return samples, stats
