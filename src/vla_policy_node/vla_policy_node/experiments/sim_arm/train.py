"""Train a tiny VLA on simulated-arm demonstrations with the project's Trainer.

    python -m vla_policy_node.experiments.sim_arm.train --robot-config config/robots/sim_arm.yaml \
        --dataset demos/dataset -o runs/sim_reach --steps 5000

The model is the product's path: a tiny Qwen3-VL (by default) built from a config (random init, trained end to end:
freeze=False, since a random backbone that stays frozen cannot learn to see), cut at its select layer, and the
flow-matching head. The samples are read once into memory (tens of thousands of 128x128 frames of the cameras
the policy reads, kept PNG-compressed), and the final checkpoint is copied to <output>/final with the run's
config and log beside it.

`--recipe` picks the defaults: `reach` (the shipped sim_reach checkpoint's) or `pick_place` (sim_pick_place's);
any flag overrides one value of it. The recipes are `SimTrainConfig`s in `RECIPES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.data import Sample, fit_normalization
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.train.trainer import LATEST, TrainConfig, Trainer


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
    decay_fraction: float = 1.0  # the cosine decay's share of the steps (< 1: held at the peak before it)
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
    # a checkpoint of the same architecture to start from (its aux probe, if any, is not taken: the new task's
    # env state may differ): pick-and-place starts from the reach checkpoint, which already finds the named block
    init_from: str = ""


# The recipes by name (`--recipe`): reach = the shipped sim_reach checkpoint's (the defaults above);
# pick_place = sim_pick_place's: the same recipe, longer, for episodes ~4x as long with two things to find
# (the aux target holds the named block's and pad's positions).
RECIPES: dict[str, SimTrainConfig] = {
    "reach": SimTrainConfig(),
    "pick_place": SimTrainConfig(steps=6000, threads=1, init_from="checkpoints/sim_reach/checkpoint"),
}


def warm_start(model, checkpoint: str | Path) -> int:
    """Copy `checkpoint`'s weights into `model` (same architecture), all but the aux probe's; how many tensors."""
    from safetensors import safe_open

    own = model.state_dict()
    taken = 0
    with safe_open(str(Path(checkpoint) / "model.safetensors"), framework="pt", device="cpu") as f:
        stored = f.keys()  # a safetensors file handle is not iterable
        keys = [k for k in stored if not k.startswith("aux")]
        mismatched = [k for k in keys if k not in own or tuple(f.get_slice(k).get_shape()) != tuple(own[k].shape)]
        missing = [k for k in own if not k.startswith("aux") and k not in keys]
        if mismatched or missing:
            raise ValueError(f"{checkpoint} is not this architecture: {len(mismatched)} tensors differ "
                             f"({mismatched[:3]}), {len(missing)} missing ({missing[:3]})")
        with torch.no_grad():
            for k in keys:
                own[k].copy_(f.get_tensor(k))
                taken += 1
    return taken


class InMemorySamples:
    """Datasets' samples read once: numbers as they are, images as stored (PNG bytes, ~2-10 kB a 128x128 frame
    instead of 49 kB decoded; video frames re-encoded as PNG), decoded per draw (~0.1 ms), so that random access
    costs no parquet reads and a 1000-episode dataset fits in a few hundred MB."""

    def __init__(self, sources: LeRobotSamples | Sequence[LeRobotSamples]) -> None:
        self._samples: list[Sample] = []
        self._encoded: list[dict[str, bytes]] = []
        for source in [sources] if isinstance(sources, LeRobotSamples) else sources:
            for i in range(len(source)):
                stored = source.encoded_images(i)
                if stored is None:  # video: decode, keep as PNG
                    sample = source[i]
                    stored = {name: _png(image) for name, image in sample.images.items()}
                else:
                    sample = source.sample(i, images=False)
                self._encoded.append(stored)
                self._samples.append(dataclasses.replace(sample, images={}))

    @property
    def samples(self) -> list[Sample]:
        """Every sample without its images (numbers only)."""
        return self._samples

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> Sample:
        images = {name: cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                  for name, data in self._encoded[index].items()}
        return dataclasses.replace(self._samples[index], images=images)


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("cannot PNG-encode an image")
    return data.tobytes()


def build_model(robot: Embodiment, config: SimTrainConfig, aux: AuxProbeConfig | None = None):
    torch.manual_seed(config.seed)
    return build_tiny_vla([robot], config.family, image_size=config.image_size, aux=aux,
                          backbone_overrides={"freeze": False, "instruction_first": config.instruction_first},
                          dim=config.head_dim, horizon=config.horizon, max_state_dim=16, max_action_dim=16)


def policy_cameras(robot: Embodiment, cameras: str) -> Embodiment:
    """The robot as the policy sees it: only the named cameras (all when `cameras` is empty)."""
    if not cameras:
        return robot
    return dataclasses.replace(robot, cameras=tuple(robot.camera(name.strip()) for name in cameras.split(",")))


def aux_config(source: LeRobotSamples, samples: InMemorySamples, weight: float) -> AuxProbeConfig | None:
    """The aux probe for the dataset's environment state (None when weight is 0)."""
    if weight <= 0:
        return None
    values = [s.env_state for s in samples.samples]
    if any(v is None for v in values):
        raise ValueError(f"aux_weight {weight} needs observation.environment_state in {source.root}; record the "
                         "demonstrations with it (experiments.sim_arm.demos does)")
    return AuxProbeConfig.fit(tuple(source.env_state_names), np.stack(values), weight)


def train(robot: Embodiment, dataset_dir: str | Path | Sequence[str | Path], output: str | Path,
          config: SimTrainConfig, *, until: int | None = None, progress: bool = False,
          ) -> tuple[Path, list[float], float]:
    """Train from scratch (or resume) into `output`; (final checkpoint dir, losses, seconds). Several datasets
    (e.g. one per demonstration worker) train as one; their normalization is then fitted on the samples."""
    torch.set_num_threads(config.threads)
    robot = policy_cameras(robot, config.cameras)
    dirs = [dataset_dir] if isinstance(dataset_dir, str | Path) else list(dataset_dir)
    sources = [LeRobotSamples(d, split=None, horizon=config.horizon, tag=robot.tag,
                              cameras={fmt.image_key(name): name for name in robot.camera_names}) for d in dirs]
    samples = InMemorySamples(sources)
    model = build_model(robot, config, aux_config(sources[0], samples, config.aux_weight))
    if config.init_from:
        warm_start(model, config.init_from)
    frames = np.concatenate([source.frame_in_episode for source in sources])
    weights = np.where(frames < config.start_frames, config.start_weight, 1.0)
    normalization = sources[0].normalization() if len(sources) == 1 else fit_normalization(samples.samples)
    trainer = Trainer(model, normalization, samples, sample_weights=weights, config=TrainConfig(
        output_dir=str(output), steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        warmup_steps=config.warmup_steps, decay_fraction=config.decay_fraction,
        save_every=max(config.steps // 4, 1), keep_checkpoints=1, seed=config.seed, progress=progress,
        log_every=25))
    start = time.perf_counter()
    losses = trainer.train(until)
    seconds = time.perf_counter() - start
    output = Path(output)
    final = output / "final"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(output / (output / LATEST).read_text().strip(), final,
                    ignore=shutil.ignore_patterns("optimizer.safetensors", "trainer_state.json"))
    (output / "train_config.json").write_text(json.dumps({"robot": robot.name, "dataset": [str(d) for d in dirs],
                                                          **asdict(config)}, indent=2))
    return final, losses, seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla_sim_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot-config", dest="robot_config", default="config/robots/sim_arm.yaml")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="reach", help="the defaults (default reach)")
    for name, value in asdict(SimTrainConfig()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, dest=name, type=type(value), default=None, help="the recipe's value unless given")
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    robot = load_embodiment(args.pop("robot_config"))
    dataset, output, recipe = args.pop("dataset"), args.pop("output"), RECIPES[args.pop("recipe")]
    config = dataclasses.replace(recipe, **{k: v for k, v in args.items() if v is not None})
    final, losses, seconds = train(robot, dataset, output, config, progress=True)
    print(f"{len(losses)} steps in {seconds:.0f} s; loss {losses[0]:.3f} -> {sum(losses[-50:]) / 50:.3f}; "
          f"checkpoint {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
