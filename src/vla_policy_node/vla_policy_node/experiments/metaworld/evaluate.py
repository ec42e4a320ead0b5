"""Meta-World evaluation of the project's own model and training path, with the tasks' scripted experts as teachers.

    python -m vla_policy_node.experiments.metaworld.evaluate --task reach-v3 --demos 50 --steps 2000 \
        --episodes 20 -o OUT

Expert episodes on layouts DEMO_LAYOUTS_FROM.. become samples; the tiny VLA (a tiny Qwen2.5-VL trained end to end
plus the flow-matching head, as experiments/sim_arm/train.py builds it) trains on them with the project's Trainer;
then, on layouts 0..episodes-1 (never demonstrated), the trained VLAPolicy acts closed loop, re-planning after the
first `execute` actions of each chunk. The scripted expert and the same architecture left at its initialization run on
the same layouts as references. Prints a JSON summary and writes it to OUT/summary.json (the trained
checkpoint lies in OUT/run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vla_policy_node.experiments.metaworld.data import demonstrations
from vla_policy_node.experiments.metaworld.env import MetaWorldEnv, MetaWorldEnvConfig
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.spec.types import Observation
from vla_policy_node.train.data import Sample, fit_normalization
from vla_policy_node.train.trainer import TrainConfig, Trainer

ROBOT_CONFIG = "config/sim/metaworld_sawyer.yaml"
DEMO_LAYOUTS_FROM = 10_000  # MT1 benchmark seeds >= 200; evaluation layouts 0.. come from seed 0


@dataclass(frozen=True)
class MetaWorldEvalConfig:
    task: str = "reach-v3"
    camera: str = "behindGripper"  # the Meta-World camera rendered into the embodiment's one camera
    demos: int = 50
    episodes: int = 20
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 100
    family: str = "qwen2_5_vl"  # tiny backbone family (qwen3_vl: absolute patch positions; image_size % 32 == 0)
    image_size: int = 112  # the tiny processor's input: a multiple of 2 patches (28 for Qwen2.5-VL, 32 for Qwen3-VL)
    head_dim: int = 64
    horizon: int = 16
    execute: int = 8  # actions of each chunk executed before re-planning
    max_steps: int = 500  # per episode: Meta-World's own limit
    seed: int = 0
    threads: int = 1


def build_model(robot: Embodiment, config: MetaWorldEvalConfig) -> VLAModel:
    """The tiny VLA as experiments/sim_arm/train.py builds it; the same seed gives the same initialization."""
    torch.manual_seed(config.seed)
    return build_tiny_vla([robot], config.family, image_size=config.image_size,
                          backbone_overrides={"freeze": False, "instruction_first": True},
                          dim=config.head_dim, horizon=config.horizon, max_state_dim=16, max_action_dim=16)


def train_model(robot: Embodiment, samples: Sequence[Sample], config: MetaWorldEvalConfig, output: str | Path, *,
                progress: bool = False) -> tuple[VLAModel, NormalizationSet, list[float], float]:
    """(trained model, normalization fitted on the samples, per-step losses, seconds)."""
    normalization = fit_normalization(samples)
    model = build_model(robot, config)
    trainer = Trainer(model, normalization, list(samples), TrainConfig(
        output_dir=str(output), steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        warmup_steps=config.warmup_steps, save_every=config.steps, keep_checkpoints=1, seed=config.seed,
        progress=progress, log_every=25))
    start = time.perf_counter()
    losses = trainer.train()
    return model, normalization, losses, time.perf_counter() - start


class Controller(Protocol):
    def reset(self, layout: int) -> None: ...

    def act(self, env: MetaWorldEnv, obs: np.ndarray) -> np.ndarray: ...


class ExpertController:
    def reset(self, layout: int) -> None:
        pass

    def act(self, env: MetaWorldEnv, obs: np.ndarray) -> np.ndarray:
        return env.expert_action(obs)


class ChunkController:
    """A VLAPolicy in receding horizon: infer a chunk from the image and state, run its first `execute` actions."""

    def __init__(self, policy: VLAPolicy, execute: int) -> None:
        if not 1 <= execute <= policy.model.config.head.horizon:
            raise ValueError(f"execute must be in 1..{policy.model.config.head.horizon}, got {execute}")
        self.policy = policy
        self.execute = execute
        self.camera = policy.embodiment.camera_names[0]
        self.latency_ms: list[float] = []
        self._queue: list[np.ndarray] = []

    def reset(self, layout: int) -> None:
        self._queue = []
        self.policy.reseed(layout)  # the flow sampler's noise: the same layout gives the same episode

    def act(self, env: MetaWorldEnv, obs: np.ndarray) -> np.ndarray:
        if not self._queue:
            observation = Observation(stamp=env.steps * env.dt, images={self.camera: env.render()},
                                      state=env.state(obs), instruction=env.instruction)
            chunk = self.policy.infer(observation)
            self.latency_ms.append(self.policy.last_timings.total_ms)
            self._queue = list(chunk.actions[: self.execute])
        return self._queue.pop(0)


@dataclass
class EvalReport:
    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # steps until success, or the step limit
    latency_ms: list[float] = field(default_factory=list)  # per inference (policies only)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"episodes": len(self.successes), "success_rate": self.success_rate,
                               "mean_episode_length": float(np.mean(self.lengths)) if self.lengths else 0.0,
                               "successes": [bool(s) for s in self.successes], "lengths": list(self.lengths)}
        if self.latency_ms:
            lat = np.asarray(self.latency_ms)
            out["latency_ms"] = {"inferences": int(lat.size), "median": float(np.median(lat)),
                                 "p90": float(np.percentile(lat, 90)), "mean": float(lat.mean())}
        return out


def run_episodes(env: MetaWorldEnv, controller: Controller, layouts: Iterable[int]) -> EvalReport:
    """One episode per layout; an episode ends at Meta-World's first info["success"] or at the step limit."""
    report = EvalReport()
    for layout in layouts:
        obs = env.reset(layout)
        controller.reset(layout)
        success = False
        while not success and env.steps < env.config.max_steps:
            obs, success = env.step(controller.act(env, obs))
        report.successes.append(success)
        report.lengths.append(env.steps)
    if isinstance(controller, ChunkController):
        report.latency_ms = list(controller.latency_ms)
    return report


def evaluate(robot: Embodiment, config: MetaWorldEvalConfig, output: str | Path, *,
             progress: bool = False) -> dict[str, Any]:
    """Demonstrations -> training -> closed-loop evaluation of trained, expert and random-init; the summary."""
    torch.set_num_threads(config.threads)
    cam = robot.cameras[0]
    env = MetaWorldEnv(MetaWorldEnvConfig(task=config.task, camera=config.camera, height=cam.height,
                                          width=cam.width, max_steps=config.max_steps))
    try:
        start = time.perf_counter()
        samples, demo_stats = demonstrations(env, range(DEMO_LAYOUTS_FROM, DEMO_LAYOUTS_FROM + config.demos),
                                             horizon=config.horizon, camera=cam.name, tag=robot.tag)
        demo_seconds = time.perf_counter() - start
        if not samples:
            raise RuntimeError(f"the {config.task} expert solved none of {config.demos} demonstration layouts")
        model, normalization, losses, train_seconds = train_model(robot, samples, config, Path(output) / "run",
                                                                  progress=progress)
        layouts = range(config.episodes)
        results: dict[str, Any] = {}
        for name, controller in (
            ("trained", ChunkController(VLAPolicy(model, normalization, robot, seed=config.seed), config.execute)),
            ("expert", ExpertController()),
            ("random_init", ChunkController(VLAPolicy(build_model(robot, config), normalization, robot,
                                                      seed=config.seed), config.execute)),
        ):
            start = time.perf_counter()
            results[name] = {**run_episodes(env, controller, layouts).summary(),
                             "seconds": round(time.perf_counter() - start, 1)}
    finally:
        env.close()
    window = min(50, len(losses))
    return {
        "task": config.task, "instruction": env.instruction, "camera": config.camera,
        "image": [cam.height, cam.width], "device": "cpu", "threads": config.threads, "config": asdict(config),
        "demonstrations": {**demo_stats.summary(), "layouts": [DEMO_LAYOUTS_FROM, DEMO_LAYOUTS_FROM + config.demos],
                           "samples": len(samples), "seconds": round(demo_seconds, 1)},
        "training": {"steps": len(losses), "seconds": round(train_seconds, 1),
                     f"loss_first{window}": float(np.mean(losses[:window])),
                     f"loss_last{window}": float(np.mean(losses[-window:]))},
        "evaluation": {"layouts": [0, config.episodes], "execute": config.execute, "max_steps": config.max_steps,
                       **results},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metaworld_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot-config", dest="robot_config", default=ROBOT_CONFIG)
    parser.add_argument("-o", "--output", required=True)
    for name, value in asdict(MetaWorldEvalConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(value), default=value)
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    robot = load_embodiment(args.pop("robot_config"))
    output = Path(args.pop("output"))
    config = replace(MetaWorldEvalConfig(), **args)
    summary = evaluate(robot, config, output, progress=True)
    output.mkdir(parents=True, exist_ok=True)
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
