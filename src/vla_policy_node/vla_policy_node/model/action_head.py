"""The interface every action head offers the VLA model: one training loss and one prediction call.

The flow-matching head and every action-space adapter implement it, so `VLAModel` and `VLAPolicy` serve them all
through one path. What differs between heads is declared on their config class, never found out by their name:

- `discrete`: actions are indices into a vocabulary (no chunk in physical units; `VLAPolicy.act`).
- `guided_by_prefix`: the head can follow a real-time-chunking prefix (flow: guided sampling).
- `provides_context`: the head exposes the feature context it reads (the auxiliary probe reads it too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from vla_policy_node.model.backbone import Backbone


class HeadConfig(Protocol):
    """What every head config offers (FlowHeadConfig, ASAHeadConfig): the file-format `type` it is stored under,
    the registry name of the head it builds, its dimensions and its capabilities."""

    type: ClassVar[str]
    guided_by_prefix: ClassVar[bool]
    provides_context: ClassVar[bool]
    backbone_dim: int
    horizon: int
    max_state_dim: int
    max_embodiments: int

    @property
    def head_name(self) -> str: ...

    @property
    def discrete(self) -> bool: ...

    @property
    def max_action_dim(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class Prediction:
    """actions: [B, H, max_action_dim] normalized (discrete heads: [B, 1, 1] action indices); tokens: the local token
    sequences that produced them (empty for heads without tokens)."""

    actions: torch.Tensor
    tokens: list[list[int]]


@dataclass
class HeadLoss:
    """A head's training loss, and the feature context it read (features [B, S, D], mask [B, S]) when its config
    `provides_context` (the auxiliary probe is trained on the same features)."""

    loss: torch.Tensor
    features: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class ActionHead(nn.Module, ABC):
    """Backbone + batch -> loss (training) or actions (inference). `batch` is what the input pipeline
    (`model/transforms`) makes: inputs, state [B, S], category [B], and for training actions [B, H, A] and
    action_mask [B, H, A], all normalized and padded to the head's maximum dimensions."""

    config: Any

    @classmethod
    def from_config(cls, config: Any, directory: Path | None = None) -> ActionHead:
        """A head with fresh parameters; `directory` holds extra files a saved head needs (FAST's BPE model)."""
        return cls(config)

    @abstractmethod
    def compute_loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> HeadLoss: ...

    @abstractmethod
    def predict(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor, *, generator: torch.Generator | None = None, sampling: Any = None,
                num_steps: int | None = None, prefix: torch.Tensor | None = None,
                prefix_weights: torch.Tensor | None = None, on_prefill: Callable[[], None] | None = None,
                on_step: Callable[[int], None] | None = None,
                sample_fn: Callable[..., torch.Tensor] | None = None) -> Prediction:
        """Normalized actions for a batch. `on_prefill` is called once the backbone has run, `on_step` after each
        head step (denoising step or decoded token); heads use the options that apply to them (flow: num_steps,
        prefix, and `sample_fn`, a stand-in with `FlowMatchingHead.sample`'s signature such as the fast path's
        captured loop; token heads: sampling) and ignore the rest."""

    def context(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The feature context (features, mask) the head reads; only heads whose config `provides_context`."""
        raise NotImplementedError(f"{type(self).__name__} exposes no feature context")

    def save_files(self, directory: Path) -> None:
        """Non-tensor state beyond config and weights (FAST's BPE model)."""

    def check_backbone(self, backbone: Backbone) -> None:
        """Raise ValueError if the head does not fit this backbone (token heads: recorded ids vs vocabulary)."""
