"""Training samples and their collation into model batches.

A sample is one observation plus the chunk of H actions that followed it, in physical units. Collation is the
model's transform pipeline (`model/transforms`), the same one `VLAPolicy` serves with: camera selection, resize,
normalization with the checkpoint's stats, padding to the head's maximum dims with a mask, and the backbone's own
processor, so training sees exactly what inference sees. Build the pipeline once (`TransformPipeline.from_model`)
and call `collate_samples`; `collate(samples, model, normalization)` builds it for a one-off batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vla_policy_node.model.transforms.device import to_device
from vla_policy_node.model.transforms.frame import Frame
from vla_policy_node.model.transforms.pipeline import TransformPipeline
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet

__all__ = ["Sample", "SampleDataset", "collate", "collate_samples", "fit_normalization", "sample_frame", "to_device"]


@dataclass(frozen=True)
class Sample:
    images: dict[str, np.ndarray]  # camera name -> HxWx3 uint8 RGB
    state: np.ndarray  # [S] physical units, embodiment state order
    actions: np.ndarray  # [H, D] physical units
    instruction: str
    tag: str  # embodiment tag
    valid: np.ndarray | None = None  # [H] bool: False for steps padded past an episode's end
    # [E] privileged scene state for auxiliary training losses only (LeRobot's observation.environment_state,
    # e.g. the target object's position); never an input to the policy
    env_state: np.ndarray | None = None


class SampleDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def fit_normalization(samples: Sequence[Sample]) -> NormalizationSet:
    """Stats per embodiment tag from a list of samples (states, and every valid action step)."""
    by_tag: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for s in samples:
        states, actions = by_tag.setdefault(s.tag, ([], []))
        states.append(np.asarray(s.state, dtype=np.float64)[None])
        valid = np.ones(len(s.actions), bool) if s.valid is None else np.asarray(s.valid, bool)
        actions.append(np.asarray(s.actions, dtype=np.float64)[valid])
    return NormalizationSet(
        {tag: EmbodimentNormalization.fit(np.concatenate(st), np.concatenate(ac)) for tag, (st, ac) in by_tag.items()}
    )


def sample_frame(sample: Sample) -> Frame:
    """A training sample as it enters the transform pipeline."""
    return Frame(tag=sample.tag, images=sample.images, state=np.asarray(sample.state), instruction=sample.instruction,
                 actions=np.asarray(sample.actions), action_valid=sample.valid, env_state=sample.env_state)


def collate_samples(samples: Sequence[Sample], pipeline: TransformPipeline) -> dict[str, Any]:
    """inputs, state [B, S], actions [B, H, A], action_mask [B, H, A], category [B] (+ env_state [B, E] when the
    model has an auxiliary probe), all normalized and padded; tensors on the CPU (`pipeline.to_device` next)."""
    return pipeline.collate([sample_frame(s) for s in samples])


def collate(samples: Sequence[Sample], model: VLAModel, normalization: NormalizationSet) -> dict[str, Any]:
    """`collate_samples` with a pipeline built for this one batch."""
    return collate_samples(samples, TransformPipeline.from_model(model, normalization))
