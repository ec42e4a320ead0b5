"""Train a tiny VLA on simulated-arm demonstrations with the project's Trainer (through vla_train).

    python -m vla_policy_node.experiments.sim_arm.train --robot-config config/robots/sim_arm.yaml \
        --dataset demos/dataset -o runs/sim_reach [--recipe reach|pick_place] [--steps 5000]

The model is the product's path: a tiny Qwen3-VL (by default) built from a config (random init, trained end to end:
freeze=False, since a random backbone that stays frozen cannot learn to see), cut at its select layer, and the
flow-matching head. The samples are read once into memory (tens of thousands of 128x128 frames), and the final
checkpoint is copied to <output>/final with the run's config and log beside it.

`--recipe` picks the defaults (`RECIPES`): `reach`, the shipped sim_reach checkpoint's (config/train/sim_reach.yaml),
or `pick_place` (config/train/sim_pick_place.yaml, not yet good enough to ship); any flag overrides one value of it.
`--dataset` may be given several times (e.g. one dataset per demonstration worker): they train as one.
`processes` > 1 trains data-parallel in that many CPU processes (vla_train under torch's launcher, DDP over gloo),
each with batch_size / processes: the tiny model's step time grows about linearly with the batch and a second
torch thread barely helps (measured: batch 16 / 32 / 64 at 0.069 / 0.116 / 0.205 s a step on one thread), so a
second process is what uses a second core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG
from vla_policy_node.train.mixture import DatasetSpec
from vla_policy_node.train.recipe import DeployRecipe, LoopRecipe, ModelRecipe, TrainRecipe


@dataclass(frozen=True)
class SimTrainConfig:
    """Defaults: the recipe of the shipped demo checkpoint (checkpoints/sim_reach/README.md says what it took).

    Qwen3-VL, because its vision tower adds a learnt position embedding per patch, so a token knows where in the
    image it is (Qwen2.5-VL's rotary positions give that only indirectly); 128 px cameras (a block is ~14 px);
    the instruction before the images, so image tokens can tell the named block from the others; and the
    auxiliary target-position loss, weighted so that grounding is learnt before the head settles on the average
    block. Without it the tiny model memorizes its training layouts and stays at chance on new ones.
    """

    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    family: str = "qwen3_vl"  # a supported transformers family (model/families.py), tiny config
    image_size: int = 128  # the tiny processor's input: a multiple of 2 patches (28 for Qwen2.5-VL, 32 for Qwen3-VL)
    head_dim: int = 64
    horizon: int = 16
    instruction_first: bool = True  # prompt layout (BackboneConfig.instruction_first)
    aux_weight: float = 4.0  # > 0: auxiliary env-state target (the dataset's observation.environment_state)
    # The first frames of each episode (the arm still at its start pose) are drawn start_weight times as often:
    # there the policy must find the target in the image, while later frames also show where the arm is
    # heading, a shortcut a small model takes instead of grounding (it then fails from the start pose).
    start_frames: int = 3
    start_weight: float = 5.0
    # comma-separated cameras the policy reads ("" = all of the robot's); the others are not fed to it. The
    # wrist camera, mostly covered by the gripper at the start pose, slowed grounding down several-fold.
    cameras: str = "scene"
    seed: int = 0
    threads: int = 2
    decay_fraction: float = 1.0  # the cosine decay's share of the steps (< 1: held at the peak before it)
    # a checkpoint of the same architecture to start from (its aux probe is not taken: the env state may differ)
    init_from: str = ""
    # the chunk strategy the checkpoint recommends (final/deployment.json; "": none, the node's default rtc)
    strategy: str = ""
    processes: int = 1  # data-parallel training processes (DDP over gloo), each batch_size / processes

    def __post_init__(self) -> None:
        if self.processes < 1 or self.batch_size % self.processes:
            raise ValueError(f"processes must be >= 1 and divide batch_size {self.batch_size}, got {self.processes}")


# The recipes by name (`--recipe`): reach = the shipped sim_reach checkpoint's (the defaults above); pick_place =
# config/train/sim_pick_place.yaml's: starts from the reach checkpoint, which already finds the named block; 50%
# closed loop on 20 unseen layouts after 6000 steps (missed grasps); pick_place_wrist, its second stage, 62% of
# 50 (rtc); pick_place_recovery, the third, is the shipped sim_pick_place checkpoint (94% of 50 with ensemble).
RECIPES: dict[str, SimTrainConfig] = {
    "reach": SimTrainConfig(),
    "pick_place": SimTrainConfig(steps=6000, threads=1, init_from="checkpoints/sim_reach/checkpoint"),
    # pick_place's second stage (config/train/sim_pick_place_wrist.yaml): the wrist camera added, which sees the
    # block between the fingers where the scene camera sees the top of the arm; starts from stage 1's output
    "pick_place_wrist": SimTrainConfig(steps=2000, cameras="scene,wrist", init_from="runs/sim_pick_place/final"),
    # the third stage (config/train/sim_pick_place_recovery.yaml): recovery demonstrations added (starts beside and
    # above the block); its output is the shipped checkpoints/sim_pick_place
    "pick_place_recovery": SimTrainConfig(steps=2500, lr=5e-4, cameras="scene,wrist",
                                          init_from="runs/sim_pick_place_wrist/final", strategy="ensemble"),
    # half the steps: the rate stays at its peak while grounding appears (~1000-2500 steps), then decays over
    # the last 30%; 2 threads (a whole 2-core machine); experiments/sim_arm/reproduce.py runs it end to end
    "reach_fast": SimTrainConfig(steps=3000, decay_fraction=0.3, threads=2),
    # the shipped reach recipe itself, its batch of 32 split over 2 processes of 16 (one per core)
    "reach_ddp": SimTrainConfig(threads=1, processes=2),
}


def policy_cameras(robot: Embodiment, cameras: str) -> Embodiment:
    """The robot as the policy sees it: only the named cameras (all when `cameras` is empty)."""
    if not cameras:
        return robot
    return dataclasses.replace(robot, cameras=tuple(robot.camera(name.strip()) for name in cameras.split(",")))


def _dirs(dataset_dir: str | Path | Sequence[str | Path]) -> list[str]:
    return [str(dataset_dir)] if isinstance(dataset_dir, str | Path) else [str(d) for d in dataset_dir]


def recipe(robot: Embodiment, dataset_dir: str | Path | Sequence[str | Path], output: str | Path,
           config: SimTrainConfig) -> TrainRecipe:
    """The sim recipe as a `vla_train` recipe (config/train/sim_reach.yaml is the same with its defaults)."""
    cameras = ",".join(f"{cam.name}:{cam.topic}" for cam in policy_cameras(robot, config.cameras).cameras)
    return TrainRecipe(
        robot=robot.name, datasets=tuple(DatasetSpec(d) for d in _dirs(dataset_dir)), output_dir=str(output),
        camera_topics=cameras,
        model=ModelRecipe(backbone=f"tiny:{config.family}", mode="full", select_layer=2,
                          image_size=config.image_size, instruction_first=config.instruction_first,
                          horizon=config.horizon, head_dim=config.head_dim, aux_weight=config.aux_weight,
                          init_from=config.init_from),
        train=LoopRecipe(steps=config.steps, batch_size=config.batch_size // config.processes, lr=config.lr,
                         warmup_steps=config.warmup_steps, decay_fraction=config.decay_fraction,
                         save_every=max(config.steps // 4, 1), keep_checkpoints=1,
                         log_every=25, val_every=config.steps, start_frames=config.start_frames,
                         start_weight=config.start_weight, in_memory=True, seed=config.seed,
                         threads=config.threads),
        deploy=DeployRecipe(strategy=config.strategy))


def train(robot: Embodiment, dataset_dir: str | Path | Sequence[str | Path], output: str | Path,
          config: SimTrainConfig, *, until: int | None = None, progress: bool = False,
          robot_config: str | Path | None = None) -> tuple[Path, list[float], float]:
    """Train from scratch (or resume) into `output` through vla_train; (final checkpoint dir, losses, seconds).
    With `config.processes` > 1 the launched processes load the robot from `robot_config` (the YAML `robot` was
    loaded from: required then, so they cannot train on another robot of the same name)."""
    plan = recipe(robot, dataset_dir, output, config)
    output = Path(output)
    if config.processes > 1:
        if until is not None:
            raise ValueError("until is for one process (a launched run resumes from its checkpoints instead)")
        if robot_config is None:
            raise ValueError("training in several processes needs robot_config: they load the robot from it")
        plan = dataclasses.replace(plan, robot=str(Path(robot_config).resolve()))
        losses, seconds = _launch(plan, config.processes, config.threads, output)
    else:
        from vla_policy_node.train.vla_train import run

        summary = run(plan, policy_cameras(robot, config.cameras), progress=progress, until=until)
        losses, seconds = summary["losses"], summary["seconds"]
    (output / "train_config.json").write_text(json.dumps({"robot": robot.name, "dataset": _dirs(dataset_dir),
                                                          **asdict(config)}, indent=2))
    return output / "final", losses, seconds


def _launch(plan: TrainRecipe, processes: int, threads: int, output: Path) -> tuple[list[float], float]:
    """vla_train in `processes` CPU processes under torch's launcher (torchrun --standalone); (the logged losses,
    every log_every steps, and the wall seconds, start-up included)."""
    output.mkdir(parents=True, exist_ok=True)
    config_file = output / "launched_recipe.json"  # JSON is YAML: vla_train reads it as its config
    config_file.write_text(json.dumps(dataclasses.asdict(plan), indent=2))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):  # never join an outer launcher's group
        env.pop(name, None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                    "-m", "vla_policy_node.cli.vla_train", str(config_file), "--no-progress"], check=True, env=env)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row], seconds


def _main(argv: Sequence[str] | None) -> int:
    parser = CliParser(prog="vla_sim_train", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.HelpFormatter)
    parser.add_argument("--robot-config", dest="robot_config", default=str(SIM_ARM_CONFIG))
    parser.add_argument("--dataset", required=True, action="append", help="a LeRobot dataset (repeatable)")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="reach", help="the defaults (default reach)")
    for name, value in asdict(SimTrainConfig()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, dest=name, type=type(value), default=None, help="the recipe's value unless given")
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    args.pop("debug")  # run_guarded's
    robot_config = args.pop("robot_config")
    robot = load_embodiment(robot_config)
    dataset, output, recipe_name = args.pop("dataset"), args.pop("output"), args.pop("recipe")
    config = dataclasses.replace(RECIPES[recipe_name], **{k: v for k, v in args.items() if v is not None})
    final, losses, seconds = train(robot, dataset, output, config, progress=True, robot_config=robot_config)
    tail = losses[-50:]
    print(f"{config.steps} steps in {seconds:.0f} s; loss {losses[0]:.3f} -> {sum(tail) / len(tail):.3f}; "
          f"checkpoint {final}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input or a failure is one line on stderr and exit code 2 (`--debug`: the traceback too)."""
    return run_guarded("vla_sim_train", lambda: _main(argv), wants_debug(argv))


if __name__ == "__main__":
    sys.exit(main())
