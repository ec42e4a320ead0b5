"""One or more LeRobot v3 datasets as one sample set, mixed by weight: what `vla_train` trains and validates on.

Each dataset contributes its share `weight / sum(weights)` of the draws whatever its size (a small dataset of
rare skills is not drowned by a large one); inside a dataset every sample is equally likely, except the first
`start_frames` frames of each episode, drawn `start_weight` times as often (see experiments/sim_arm/train.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet, Normalizer, Stats
from vla_policy_node.train.data import Sample
from vla_policy_node.train.lerobot_dataset import LeRobotSamples


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of the mixture: its directory, relative weight, and camera mapping (dataset key -> camera)."""

    path: str
    weight: float = 1.0
    cameras: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"dataset {self.path}: weight must be > 0, got {self.weight}")


class Mixture:
    """Samples of several datasets, indexable as one; `weights` gives each sample's draw probability."""

    def __init__(self, specs: Sequence[DatasetSpec], *, split: str | None, horizon: int, tag: str,
                 require_cameras: Sequence[str] = (), start_frames: int = 0, start_weight: float = 1.0,
                 in_memory: bool = False) -> None:
        if not specs:
            raise ValueError("no datasets given")
        self.parts: list[LeRobotSamples] = []
        self.specs = list(specs)
        for spec in specs:
            if not Path(spec.path).is_dir():
                raise FileNotFoundError(f"dataset {spec.path} not found (a LeRobot v3 dataset directory)")
            self.parts.append(LeRobotSamples(spec.path, split=split, horizon=horizon, tag=tag, cameras=spec.cameras,
                                             require_cameras=require_cameras))
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        weights = []
        total = sum(s.weight for s in specs)
        for spec, part in zip(specs, self.parts, strict=True):
            w = np.where(part.frame_in_episode < start_frames, start_weight, 1.0)
            # one dataset: the raw per-frame weights (the Trainer normalizes; the sim recipe's exact draws)
            weights.append(w if len(specs) == 1 else w / w.sum() * spec.weight / total)
        self.weights = np.concatenate(weights)  # relative draw probability of each sample
        self._cache: list[tuple[Sample, dict[str, bytes]]] | None = None
        if in_memory:
            self._cache = [self._stored(i) for i in range(len(self))]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, index: int) -> tuple[LeRobotSamples, int]:
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.parts[part], index - int(self.offsets[part])

    def _get(self, index: int) -> Sample:
        part, i = self._locate(index)
        return part[i]

    def _stored(self, index: int) -> tuple[Sample, dict[str, bytes]]:
        """The sample without images, and its images as stored (PNG/JPEG bytes; video frames re-encoded as PNG):
        a 128x128 frame is a few kB instead of 49 kB, decoded per draw in ~0.1 ms."""
        part, i = self._locate(index)
        stored = part.encoded_images(i)
        if stored is None:
            sample = part[i]
            return dataclasses.replace(sample, images={}), {k: _png(v) for k, v in sample.images.items()}
        return part.sample(i, images=False), stored

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range ({len(self)} samples)")
        if self._cache is None:
            return self._get(index)
        sample, stored = self._cache[index]
        return dataclasses.replace(sample, images={k: _decode(v) for k, v in stored.items()})

    def env_states(self) -> list[np.ndarray | None]:
        """Every sample's env_state (without reading images)."""
        if self._cache is not None:
            return [sample.env_state for sample, _ in self._cache]
        out = []
        for index in range(len(self)):
            part, i = self._locate(index)
            out.append(part.sample(i, images=False).env_state)
        return out

    def normalization(self) -> NormalizationSet:
        """One dataset: its meta/stats.json. Several: the statistics of what the trainer draws, every frame of
        this split weighted by its dataset's share `weight / sum(weights)` spread over that dataset's frames (a
        small dataset of weight 1 counts as much as a large one of weight 1); the normalization modes of the
        first dataset's. The datasets must share one state/action layout."""
        first = self.parts[0].normalization()
        if len(self.parts) == 1:
            return first
        states, actions, weights = [], [], []
        total = sum(spec.weight for spec in self.specs)
        for spec, part in zip(self.specs, self.parts, strict=True):
            state, action = part.frames()
            if state.shape[1:] != self.parts[0].frames()[0].shape[1:] or \
                    action.shape[1:] != self.parts[0].frames()[1].shape[1:]:
                raise ValueError(f"dataset {spec.path}: state/action dims {state.shape[1]}/{action.shape[1]} differ "
                                 f"from {self.specs[0].path}'s; a mixture trains one robot layout")
            states.append(state)
            actions.append(action)
            weights.append(np.full(len(state), spec.weight / total / max(1, len(state))))
        p = np.concatenate(weights)
        (tag, own), = first.by_tag.items()
        return NormalizationSet({tag: EmbodimentNormalization(
            Normalizer(Stats.weighted(np.concatenate(states), p), own.state.mode),
            Normalizer(Stats.weighted(np.concatenate(actions), p), own.action.mode))})


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("cannot PNG-encode an image")
    return data.tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
