"""BabyAI (minigrid) for the action-space-adapter study: expert demonstrations from the BabyAI bot, rollouts of a
discrete policy in lockstep over many environments, success rate.

The agent sees its egocentric 7x7 view rendered as a 56x56 RGB image and the mission text; actions are minigrid's
seven (left, right, forward, pickup, drop, toggle, done). Episodes are cut at `max_steps` (default 20, about three
times the bot's episode length), so that wandering at random rarely succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vla_policy_node.train.data import Sample

ACTIONS = ("left", "right", "forward", "pickup", "drop", "toggle", "done")  # minigrid.core.actions.Actions order
PHRASES = ("turn left", "turn right", "move forward", "pick up", "drop", "toggle", "done")  # SemLang
TAG = "babyai"
CAMERA = "view"


def make_env(name: str, max_steps: int):
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the BabyAI environments)
    from minigrid.wrappers import RGBImgPartialObsWrapper

    return RGBImgPartialObsWrapper(gym.make(name, max_steps=max_steps), tile_size=8)


@dataclass(frozen=True)
class Demos:
    samples: list[Sample]
    episodes: int
    successes: int


def bot_demonstrations(name: str, seeds: Sequence[int], max_steps: int) -> Demos:
    """One bot episode per seed; every step becomes a sample (image, mission -> the bot's action index)."""
    import logging

    from minigrid.utils.baby_ai_bot import BabyAIBot

    logging.getLogger("minigrid").setLevel(logging.ERROR)
    env = make_env(name, max_steps)
    samples, successes = [], 0
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        bot = BabyAIBot(env.unwrapped)
        reward = 0.0
        for _ in range(max_steps):
            action = int(bot.replan())
            samples.append(Sample({CAMERA: obs["image"]}, np.zeros(0), np.array([[float(action)]]), obs["mission"],
                                  TAG))
            obs, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        successes += reward > 0
    env.close()
    return Demos(samples, len(seeds), successes)


def success_rate(act: Callable[[list[dict], list[str]], list[int]], name: str, seeds: Sequence[int],
                 max_steps: int) -> float:
    """Roll out `act` (batched: one call per step for all running episodes) on each seed's environment."""
    envs = [make_env(name, max_steps) for _ in seeds]
    observations = [env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds, strict=True)]
    running = list(range(len(envs)))
    success = np.zeros(len(envs), bool)
    while running:
        actions = act([{CAMERA: observations[i]["image"]} for i in running],
                      [observations[i]["mission"] for i in running])
        still = []
        for i, action in zip(running, actions, strict=True):
            observations[i], reward, terminated, truncated, _ = envs[i].step(int(action))
            if terminated or truncated:
                success[i] = reward > 0
            else:
                still.append(i)
        running = still
    for env in envs:
        env.close()
    return float(success.mean())


def random_actions(seed: int) -> Callable[[list[dict], list[str]], list[int]]:
    rng = np.random.default_rng(seed)
    return lambda images, missions: rng.integers(0, len(ACTIONS), len(images)).tolist()
