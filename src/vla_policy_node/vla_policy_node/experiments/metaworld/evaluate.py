"""Meta-World evaluation of the project's own model and training path, with the tasks' scripted experts as teachers.

    python -m vla_policy_node.experiments.metaworld.evaluate --task reach-v3 --demos 50 --steps 2000 \
        --episodes 20 -o OUT [--recipe grounding] [--task MT10]

Expert episodes on layouts DEMO_LAYOUTS_FROM.. become samples; the tiny VLA (a tiny Qwen2.5-VL trained end to end
plus the flow-matching head, as experiments/sim_arm/train.py builds it) trains on them with the project's Trainer;
then, on layouts first_layout.. (0..episodes-1 by default; never demonstrated), the trained VLAPolicy acts closed
loop, re-planning after the first `execute` actions of each chunk (`--strategy ensemble`: a chunk every `execute`
steps, overlapping chunks averaged). `--checkpoint` evaluates an earlier run's checkpoint instead of training.
The scripted expert and the same architecture left at its initialization run on the same layouts as references.
Prints a JSON summary and writes it to OUT/summary.json (the trained checkpoint lies in OUT/run).

`--recipe grounding` applies the sim arm's grounding recipe (checkpoints/sim_reach/README.md): Qwen3-VL at 128 px
with the instruction first, an auxiliary loss on the goal and object positions (recorded from Meta-World's
observation as each sample's env_state; the policy never gets them) and the first frames of each episode drawn
more often. `--task` takes one MT1 task, a comma-separated list or MT10: one policy is trained on all of the
tasks' demonstrations (the instruction names the task) and evaluated on each; the summary then has a `per_task`
section with the three rows of every task.

`--recipe grounding_front` (the recommended one; README "Meta-World"): the grounding recipe seen through the
"front" camera (env.FREE_VIEWS), 600 demonstrations by an expert that aims the fingers' centre at reach's goal
(`MetaWorldEnv.expert_action`), recorded 20 steps past success.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vla_policy_node.control.config import ExecutorConfig
from vla_policy_node.control.ensemble import ensemble_weights
from vla_policy_node.experiments.metaworld.data import DemoStats, demonstrations
from vla_policy_node.experiments.metaworld.env import ENV_STATE_NAMES, MT10, MetaWorldEnv, MetaWorldEnvConfig
from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.spec.repo_files import REPO_CONFIG
from vla_policy_node.spec.types import Observation
from vla_policy_node.train.data import Sample, fit_normalization
from vla_policy_node.train.trainer import TrainConfig, Trainer

ROBOT_CONFIG = str(REPO_CONFIG / "sim" / "metaworld_sawyer.yaml")
AIM_FINGERS = ("reach-v3",)  # tasks whose scripted policy moves the hand body to the point judged at the fingers
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
    execute: int = 8  # actions of each chunk executed before re-planning (ensemble: steps between chunks)
    strategy: str = "synchronous"  # or "ensemble" (EnsembleController)
    max_steps: int = 500  # per episode: Meta-World's own limit
    seed: int = 0
    threads: int = 1
    aux_weight: float = 0.0  # > 0: auxiliary loss on the goal and object positions (ENV_STATE_NAMES)
    start_frames: int = 0  # the first frames of each episode are drawn start_weight times as often
    start_weight: float = 1.0
    aim_fingers: bool = False  # demonstrations: the expert aims the fingers' centre (MetaWorldEnv.expert_action)
    after_success: int = 0  # demonstrations: expert steps recorded past its first success
    first_layout: int = 0  # evaluation layouts first_layout .. first_layout + episodes - 1 (0..: the reported ones)
    checkpoint: str = ""  # a trained run's checkpoint to evaluate instead of demonstrating and training


# `--recipe`: the defaults above ("baseline", the README's first table) or the sim arm's grounding recipe
RECIPES: dict[str, MetaWorldEvalConfig] = {
    "baseline": MetaWorldEvalConfig(),
    "grounding": MetaWorldEvalConfig(family="qwen3_vl", image_size=128, aux_weight=4.0, start_frames=3,
                                     start_weight=5.0, batch_size=32),
}
# the grounding recipe seen through the "front" view (env.FREE_VIEWS), where the goal is a ~7 px sphere of its own
RECIPES["grounding_front"] = replace(RECIPES["grounding"], camera="front", demos=600, steps=5000, aim_fingers=True,
                                    after_success=20)


def task_list(task: str) -> list[str]:
    """"MT10" or a comma-separated list of MT1 task names."""
    return list(MT10) if task.upper() == "MT10" else [t.strip() for t in task.split(",") if t.strip()]


def build_model(robot: Embodiment, config: MetaWorldEvalConfig, aux: AuxProbeConfig | None = None) -> VLAModel:
    """The tiny VLA as experiments/sim_arm/train.py builds it; the same seed gives the same initialization."""
    torch.manual_seed(config.seed)
    return build_tiny_vla([robot], config.family, image_size=config.image_size, aux=aux,
                          backbone_overrides={"freeze": False, "instruction_first": True},
                          dim=config.head_dim, horizon=config.horizon, max_state_dim=16, max_action_dim=16)


def train_model(robot: Embodiment, samples: Sequence[Sample], config: MetaWorldEvalConfig, output: str | Path, *,
                progress: bool = False, frame_in_episode: Sequence[int] | None = None,
                ) -> tuple[VLAModel, NormalizationSet, list[float], float]:
    """(trained model, normalization fitted on the samples, per-step losses, seconds). frame_in_episode: each
    sample's step in its episode, for the start-frame weighting."""
    normalization = fit_normalization(samples)
    aux = None
    if config.aux_weight > 0:
        aux = AuxProbeConfig.fit(ENV_STATE_NAMES, np.stack([s.env_state for s in samples]), config.aux_weight)
    model = build_model(robot, config, aux)
    weights = None
    if config.start_frames > 0 and frame_in_episode is not None:
        weights = np.where(np.asarray(frame_in_episode) < config.start_frames, config.start_weight, 1.0)
    trainer = Trainer(model, normalization, list(samples), sample_weights=weights, config=TrainConfig(
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


class EnsembleController(ChunkController):
    """ACT's temporal ensembling, as the policy node's `strategy: ensemble` (control/executor.py): a new chunk
    every `execute` steps, and each step's action is the average of every live chunk's prediction for that step,
    weighted exp(-decay * i) with i = 0 for the oldest (control/ensemble.py). Averaging damps the flow head's
    sample-to-sample scatter. Meta-World's actions are per-step hand moves, so chunks are averaged in action
    space, step by step."""

    def __init__(self, policy: VLAPolicy, execute: int, decay: float = ExecutorConfig().ensemble_decay) -> None:
        super().__init__(policy, execute)
        self.decay = decay
        self._chunks: list[tuple[int, np.ndarray]] = []  # (first step, actions [H, D])

    def reset(self, layout: int) -> None:
        super().reset(layout)
        self._chunks = []

    def act(self, env: MetaWorldEnv, obs: np.ndarray) -> np.ndarray:
        step = env.steps
        if not self._chunks or step - self._chunks[-1][0] >= self.execute:
            observation = Observation(stamp=step * env.dt, images={self.camera: env.render()},
                                      state=env.state(obs), instruction=env.instruction)
            chunk = self.policy.infer(observation)
            self.latency_ms.append(self.policy.last_timings.total_ms)
            self._chunks.append((step, np.asarray(chunk.actions, np.float64)))
        self._chunks = [(t0, a) for t0, a in self._chunks if step - t0 < len(a)]
        predictions = np.stack([a[step - t0] for t0, a in self._chunks])
        weights = ensemble_weights(np.ones(len(predictions), bool), self.decay)  # every live chunk covers `step`
        return weights @ predictions / weights.sum()


CONTROLLERS: dict[str, type[ChunkController]] = {"synchronous": ChunkController, "ensemble": EnsembleController}


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


def policy_robot(robot: Embodiment, config: MetaWorldEvalConfig) -> Embodiment:
    """The robot with its one camera rendered at the model's input size (no resampling between them)."""
    cam = dataclasses.replace(robot.cameras[0], height=config.image_size, width=config.image_size)
    return dataclasses.replace(robot, cameras=(cam,))


def make_envs(robot: Embodiment, config: MetaWorldEvalConfig) -> dict[str, MetaWorldEnv]:
    cam = robot.cameras[0]
    return {task: MetaWorldEnv(MetaWorldEnvConfig(task=task, camera=config.camera, height=cam.height,
                                                  width=cam.width, max_steps=config.max_steps))
            for task in task_list(config.task)}


@dataclass
class Trained:
    """What demonstrating and training gave: the policy and the figures of how it came about."""

    policy: VLAPolicy
    demo_stats: dict[str, DemoStats] = field(default_factory=dict)
    samples: int = 0
    demo_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0


def demonstrate_and_train(robot: Embodiment, envs: dict[str, MetaWorldEnv], config: MetaWorldEvalConfig,
                          output: str | Path, *, progress: bool = False) -> Trained:
    cam = robot.cameras[0]
    demo_layouts = range(DEMO_LAYOUTS_FROM, DEMO_LAYOUTS_FROM + config.demos)
    start = time.perf_counter()
    samples: list[Sample] = []
    frames: list[int] = []
    demo_stats: dict[str, DemoStats] = {}
    for task, env in envs.items():
        task_samples, demo_stats[task] = demonstrations(env, demo_layouts, horizon=config.horizon,
                                                        camera=cam.name, tag=robot.tag,
                                                        aim_fingers=config.aim_fingers and task in AIM_FINGERS,
                                                        after_success=config.after_success)
        samples += task_samples
        frames += demo_stats[task].frame_in_episode
    demo_seconds = time.perf_counter() - start
    if not samples:
        raise RuntimeError(f"the experts solved none of {config.demos} demonstration layouts of {list(envs)}")
    model, normalization, losses, train_seconds = train_model(robot, samples, config, Path(output) / "run",
                                                              progress=progress, frame_in_episode=frames)
    return Trained(VLAPolicy(model, normalization, robot, seed=config.seed), demo_stats, len(samples),
                   demo_seconds, losses, train_seconds)


def evaluate(robot: Embodiment, config: MetaWorldEvalConfig, output: str | Path, *,
             progress: bool = False) -> dict[str, Any]:
    """Demonstrations -> training (or `config.checkpoint`) -> closed-loop evaluation of trained, expert and
    random-init; the summary."""
    torch.set_num_threads(config.threads)
    robot = policy_robot(robot, config)
    envs = make_envs(robot, config)
    layouts = range(config.first_layout, config.first_layout + config.episodes)
    try:
        if config.checkpoint:
            trained = Trained(VLAPolicy.from_checkpoint(config.checkpoint, robot, seed=config.seed))
        else:
            trained = demonstrate_and_train(robot, envs, config, output, progress=progress)
        policy = trained.policy
        random_init = VLAPolicy(build_model(robot, config, policy.model.config.aux),
                                NormalizationSet({robot.tag: policy.norm}), robot, seed=config.seed)
        per_task = {task: evaluate_task(env, config, layouts, policy, random_init, progress=progress)
                    for task, env in envs.items()}
    finally:
        for env in envs.values():
            env.close()
    for task, stats in trained.demo_stats.items():
        per_task[task]["demonstrations"] = stats.summary()
    return summarize(robot, config, trained, per_task, layouts)


def chunk_controller(policy: VLAPolicy, config: MetaWorldEvalConfig) -> ChunkController:
    if config.strategy not in CONTROLLERS:
        raise ValueError(f"strategy must be one of {sorted(CONTROLLERS)}, got {config.strategy!r}")
    return CONTROLLERS[config.strategy](policy, config.execute)


def evaluate_task(env: MetaWorldEnv, config: MetaWorldEvalConfig, layouts: range, policy: VLAPolicy,
                  random_init: VLAPolicy, *, progress: bool = False) -> dict[str, Any]:
    """The trained, expert and random-init rows of one task on the same layouts."""
    results: dict[str, Any] = {"instruction": env.instruction}
    for name, controller in (("trained", chunk_controller(policy, config)),
                             ("expert", ExpertController()),
                             ("random_init", chunk_controller(random_init, config))):
        start = time.perf_counter()
        results[name] = {**run_episodes(env, controller, layouts).summary(),
                         "seconds": round(time.perf_counter() - start, 1)}
        if progress:
            print(f"{env.config.task} {name}: {results[name]['success_rate']:.0%} of {len(layouts)}", flush=True)
    return results


def summarize(robot: Embodiment, config: MetaWorldEvalConfig, trained: Trained, per_task: dict[str, Any],
              layouts: range) -> dict[str, Any]:
    cam = robot.cameras[0]
    losses = trained.losses
    window = max(1, min(50, len(losses)))
    summary: dict[str, Any] = {
        "task": config.task, "camera": config.camera,
        "image": [cam.height, cam.width], "device": "cpu", "threads": config.threads, "config": asdict(config),
        "demonstrations": {"episodes": sum(len(d.layouts) for d in trained.demo_stats.values()),
                           "expert_successes": sum(int(sum(d.successes)) for d in trained.demo_stats.values()),
                           "layouts": [DEMO_LAYOUTS_FROM, DEMO_LAYOUTS_FROM + config.demos],
                           "samples": trained.samples, "seconds": round(trained.demo_seconds, 1)},
        "training": {"steps": len(losses), "seconds": round(trained.train_seconds, 1),
                     f"loss_first{window}": float(np.mean(losses[:window])) if losses else None,
                     f"loss_last{window}": float(np.mean(losses[-window:])) if losses else None},
    }
    evaluation = {"layouts": [layouts.start, layouts.stop], "execute": config.execute, "strategy": config.strategy,
                  "max_steps": config.max_steps}
    if len(per_task) == 1:
        (only,) = per_task.values()
        summary["instruction"] = only["instruction"]
        if "demonstrations" in only:
            summary["demonstrations"]["mean_length"] = only["demonstrations"]["mean_length"]
        summary["evaluation"] = {**evaluation, **{k: only[k] for k in ("trained", "expert", "random_init")}}
    else:
        summary["evaluation"] = evaluation
        summary["per_task"] = per_task
    return summary


def _main(argv: Sequence[str] | None) -> int:
    parser = CliParser(prog="metaworld_eval", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.HelpFormatter)
    parser.add_argument("--robot-config", dest="robot_config", default=ROBOT_CONFIG)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="baseline",
                        help="the defaults: baseline (README's first table) or grounding (the sim arm's recipe)")
    for name, value in asdict(MetaWorldEvalConfig()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, dest=name, type=type(value), default=None, help="the recipe's value unless given")
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    args.pop("debug")  # run_guarded's
    robot = load_embodiment(args.pop("robot_config"))
    output = Path(args.pop("output"))
    recipe = RECIPES[args.pop("recipe")]
    config = replace(recipe, **{k: v for k, v in args.items() if v is not None})
    start = time.perf_counter()
    summary = evaluate(robot, config, output, progress=True)
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)  # demonstrations, training and evaluation
    output.mkdir(parents=True, exist_ok=True)
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input or a failure is one line on stderr and exit code 2 (`--debug`: the traceback too)."""
    return run_guarded("metaworld_eval", lambda: _main(argv), wants_debug(argv))


if __name__ == "__main__":
    sys.exit(main())
