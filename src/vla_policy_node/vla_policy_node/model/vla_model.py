"""The VLA model: a truncated multimodal LLM backbone feeding an action head (flow matching by default, or an
action-space adapter; every head is registered in model/heads.py and served through the same two calls, `loss`
and `predict`).

Embodiments are slots (`embodiment_slot.py`): each has an index into the head's per-embodiment encoders/decoders,
its state and action dimensionality (padded to the head's maximum with a mask), and the names, camera order and
camera sizes it was trained with. What the model is fed is made by the input pipeline (`model/transforms`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.action_head import ActionHead, HeadConfig, Prediction
from vla_policy_node.model.aux_probe import AuxProbe, AuxProbeConfig
from vla_policy_node.model.backbone import Backbone, BackboneConfig
from vla_policy_node.model.embodiment_slot import EmbodimentSlot, UnknownEmbodimentError, make_slots
from vla_policy_node.model.heads import FlowHeadConfig, build_head
from vla_policy_node.spec.embodiment import Embodiment

__all__ = ["EmbodimentSlot", "UnknownEmbodimentError", "VLAConfig", "VLAModel", "make_slots"]


@dataclass(frozen=True)
class VLAConfig:
    backbone: BackboneConfig
    head: HeadConfig
    embodiments: tuple[EmbodimentSlot, ...] = field(default_factory=tuple)
    aux: AuxProbeConfig | None = None  # auxiliary env-state target (training loss only; model/aux_probe.py)

    def __post_init__(self) -> None:
        if self.aux is not None and not getattr(self.head, "provides_context", False):
            raise ValueError("the auxiliary env-state probe reads the feature context of a head that exposes one "
                             f"(the flow head); this head ({getattr(self.head, 'type', '?')}) has none")
        tags = [s.tag for s in self.embodiments]
        if len(set(tags)) != len(tags):
            raise ValueError(f"duplicate embodiment tags: {tags}")
        for slot in self.embodiments:
            if not 0 <= slot.index < self.head.max_embodiments:
                raise ValueError(f"embodiment {slot.tag!r} index {slot.index} outside [0, {self.head.max_embodiments})")
            if slot.state_dim > self.head.max_state_dim or slot.action_dim > self.head.max_action_dim:
                raise ValueError(
                    f"embodiment {slot.tag!r} has state/action dims {slot.state_dim}/{slot.action_dim}, "
                    f"more than the head's maximum {self.head.max_state_dim}/{self.head.max_action_dim}"
                )


class VLAModel(nn.Module):
    def __init__(self, config: VLAConfig, backbone: Backbone, head: ActionHead | None = None) -> None:
        super().__init__()
        if config.head.backbone_dim != backbone.hidden_size:
            raise ValueError(
                f"head expects backbone features of size {config.head.backbone_dim}, "
                f"backbone gives {backbone.hidden_size}"
            )
        self.config = config
        self.backbone = backbone
        self.head: ActionHead = head if head is not None else build_head(config.head)
        self.head.check_backbone(backbone)  # token heads: recorded ids must fit the vocabulary
        self._slots = {s.tag: s for s in config.embodiments}
        self.aux_probe = AuxProbe(config.aux, config.head.dim) if config.aux is not None else None
        self.last_loss_terms: dict[str, float] = {}

    @classmethod
    def build(cls, backbone_config: BackboneConfig, head_overrides: dict[str, Any] | None,
              embodiments: list[Embodiment], aux: AuxProbeConfig | None = None,
              processor: ProcessorMixin | None = None) -> VLAModel:
        """A fresh model with a flow head (backbone from its source or config, head randomly initialized).
        `processor`: required for a config-only backbone (`Backbone.build`)."""
        backbone = Backbone.build(backbone_config, processor)
        head_cfg = FlowHeadConfig(backbone_dim=backbone.hidden_size, **(head_overrides or {}))
        config = VLAConfig(backbone=backbone_config, head=head_cfg, embodiments=make_slots(embodiments), aux=aux)
        return cls(config, backbone)

    def slot(self, tag: str) -> EmbodimentSlot:
        if tag not in self._slots:
            raise UnknownEmbodimentError(f"unknown embodiment {tag!r}; this model knows {sorted(self._slots)}")
        return self._slots[tag]

    @property
    def backbone_trainable(self) -> bool:
        return any(p.requires_grad for p in self.backbone.parameters())

    @property
    def head_type(self) -> str:
        """The registered name of the head ("flow", or the adapter's name)."""
        return self.config.head.head_name

    def loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """batch (the pipeline's `collate`): inputs, state [B, S], actions [B, H, A], action_mask [B, H, A],
        category [B]; with an aux probe also env_state [B, E] (normalized). The terms of the last call are kept
        in `last_loss_terms` (logging)."""
        out = self.head.compute_loss(self.backbone, batch)
        self.last_loss_terms = {"action_loss": float(out.loss.detach())}
        if self.aux_probe is None:
            return out.loss
        if "env_state" not in batch:
            raise ValueError("this model has an auxiliary env-state probe; the batch has no env_state")
        if out.features is None or out.mask is None:  # pragma: no cover - VLAConfig refuses such heads
            raise RuntimeError("the head returned no feature context for the auxiliary probe")
        aux_loss = self.aux_probe.loss(out.features, out.mask, batch["env_state"])
        self.last_loss_terms["aux_loss"] = float(aux_loss.detach())
        return out.loss + self.aux_probe.config.weight * aux_loss

    def predict(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None, sampling: Any = None,
                num_steps: int | None = None, prefix: torch.Tensor | None = None,
                prefix_weights: torch.Tensor | None = None, on_prefill: Callable[[], None] | None = None,
                on_step: Callable[[int], None] | None = None,
                sample_fn: Callable[..., torch.Tensor] | None = None) -> Prediction:
        """Normalized actions for a batch of the pipeline's `inputs`; the one inference path of every head."""
        return self.head.predict(self.backbone, batch["inputs"], batch["state"], batch["category"],
                                 generator=generator, sampling=sampling, num_steps=num_steps, prefix=prefix,
                                 prefix_weights=prefix_weights, on_prefill=on_prefill, on_step=on_step,
                                 sample_fn=sample_fn)

    @torch.inference_mode()
    def predict_env_state(self, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                          category: torch.Tensor) -> torch.Tensor:
        """The aux probe's estimate in physical units [B, E] (diagnostics; the policy never needs it)."""
        if self.aux_probe is None:
            raise ValueError("this model has no auxiliary env-state probe")
        features, mask = self.head.context(self.backbone, inputs, state, category)
        cfg = self.aux_probe.config
        pred = self.aux_probe(features, mask).float()
        return pred * torch.tensor(cfg.std, device=pred.device) + torch.tensor(cfg.mean, device=pred.device)
