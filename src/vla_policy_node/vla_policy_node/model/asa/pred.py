"""Pred adapters: the action straight from the hidden state, no tokens (Szot et al.'s continuous and discrete Pred).

Continuous: an MLP regresses the whole normalized chunk [H, D], trained with MSE (masked past episode ends).
Discrete: an MLP gives one logit per action of the vocabulary, trained with cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla_policy_node.model.asa.adapter import ActionSpaceAdapter, Prediction, action_indices
from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.decoding import Sampling, choose
from vla_policy_node.model.backbone import Backbone
from vla_policy_node.model.head_registry import register_head


def mlp_head(inp: int, hidden: int, out: int) -> nn.Sequential:
    """LayerNorm first: the cut backbone has no final norm, and mid-layer hidden states vary in scale."""
    return nn.Sequential(nn.LayerNorm(inp), nn.Linear(inp, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, out))


@register_head("pred", ASAHeadConfig)
class PredAdapter(ActionSpaceAdapter):
    name = "pred"

    def __init__(self, config: ASAHeadConfig) -> None:
        super().__init__(config)
        self.mlp = mlp_head(config.backbone_dim, config.hidden, config.horizon * config.action_dim)

    def head(self, hidden: torch.Tensor, backbone: Backbone) -> torch.Tensor:
        out = self.mlp(hidden.to(self._dtype()))
        return out.reshape(*hidden.shape[:-1], self.config.horizon, self.config.action_dim)

    def loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> torch.Tensor:
        hidden, _ = self.condition(backbone, batch["inputs"], batch["state"], batch["category"])
        pred = self.head(hidden, backbone)
        mask = batch["action_mask"].to(pred.dtype)
        err = F.mse_loss(pred, batch["actions"].to(pred.dtype), reduction="none") * mask
        return err.sum() / mask.sum().clamp_min(1.0)

    def predict(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor, *, generator: torch.Generator | None = None, sampling: Sampling | None = None,
                num_steps: int | None = None, prefix: torch.Tensor | None = None,
                prefix_weights: torch.Tensor | None = None, on_prefill: Callable[[], None] | None = None,
                on_step: Callable[[int], None] | None = None,
                sample_fn: Callable[..., torch.Tensor] | None = None) -> Prediction:
        hidden, _ = self.condition(backbone, inputs, state, category)
        if on_prefill is not None:
            on_prefill()
        actions = self.head(hidden, backbone)
        if on_step is not None:
            on_step(0)
        return Prediction(actions=actions, tokens=[])


@register_head("discrete_pred", ASAHeadConfig)
class DiscretePredAdapter(ActionSpaceAdapter):
    name = "discrete_pred"

    def __init__(self, config: ASAHeadConfig) -> None:
        super().__init__(config)
        self.mlp = mlp_head(config.backbone_dim, config.hidden, len(config.actions))

    def head(self, hidden: torch.Tensor, backbone: Backbone) -> torch.Tensor:
        return self.mlp(hidden.to(self._dtype()))

    def loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> torch.Tensor:
        hidden, _ = self.condition(backbone, batch["inputs"], batch["state"], batch["category"])
        target = action_indices(batch, len(self.config.actions)).to(hidden.device)
        return F.cross_entropy(self.head(hidden, backbone).float(), target)

    def predict(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor, *, generator: torch.Generator | None = None, sampling: Sampling | None = None,
                num_steps: int | None = None, prefix: torch.Tensor | None = None,
                prefix_weights: torch.Tensor | None = None, on_prefill: Callable[[], None] | None = None,
                on_step: Callable[[int], None] | None = None,
                sample_fn: Callable[..., torch.Tensor] | None = None) -> Prediction:
        hidden, _ = self.condition(backbone, inputs, state, category)
        if on_prefill is not None:
            on_prefill()
        logits = self.head(hidden, backbone)
        every = torch.ones_like(logits, dtype=torch.bool)
        index = choose(logits, every, sampling or self.sampling(), generator)
        if on_step is not None:
            on_step(0)
        return Prediction(actions=index.to(logits.dtype).reshape(-1, 1, 1), tokens=[])
