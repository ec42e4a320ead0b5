"""The VLA model: a truncated multimodal LLM backbone feeding an action head (flow matching by default, or an
action-space adapter: model/heads.py).

Embodiments are slots: each has an index into the head's per-embodiment encoders/decoders, its state and action
dimensionality (padded to the head's maximum with a mask), and the names and camera order it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from vla_policy_node.model.aux_probe import AuxProbe, AuxProbeConfig
from vla_policy_node.model.backbone import Backbone, BackboneConfig
from vla_policy_node.model.flow_head import FlowHeadConfig, HeadContext
from vla_policy_node.model.heads import HeadConfig, build_head, head_type
from vla_policy_node.spec.embodiment import Embodiment


class UnknownEmbodimentError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class EmbodimentSlot:
    """What the model knows about one embodiment it was built or trained for."""

    tag: str
    index: int
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    camera_names: tuple[str, ...]
    dt: float

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment, index: int) -> EmbodimentSlot:
        return cls(
            tag=embodiment.tag,
            index=index,
            state_names=embodiment.state_names,
            action_names=embodiment.action_names,
            camera_names=embodiment.camera_names,
            dt=embodiment.rates.action_dt,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbodimentSlot:
        return cls(
            tag=str(data["tag"]),
            index=int(data["index"]),
            state_names=tuple(data["state_names"]),
            action_names=tuple(data["action_names"]),
            camera_names=tuple(data["camera_names"]),
            dt=float(data["dt"]),
        )

    def check_matches(self, embodiment: Embodiment) -> None:
        """A robot config must describe the same state/action layout the slot was trained with, and have every
        camera it was trained with (a robot may have more cameras than a policy uses: those are not fed)."""
        for what, mine, theirs in (
            ("state names", self.state_names, embodiment.state_names),
            ("action names", self.action_names, embodiment.action_names),
        ):
            if tuple(mine) != tuple(theirs):
                raise ValueError(
                    f"embodiment {embodiment.tag!r}: the checkpoint was trained with {what} {list(mine)}, "
                    f"but the robot config has {list(theirs)}"
                )
        missing = [name for name in self.camera_names if name not in embodiment.camera_names]
        if missing:
            from vla_policy_node.spec.remap import camera_hint

            raise ValueError(
                f"embodiment {embodiment.tag!r}: the checkpoint was trained with cameras {list(self.camera_names)}, "
                f"but the robot config has no camera {missing} (it has {list(embodiment.camera_names)}); "
                + camera_hint(missing, embodiment)
            )


@dataclass(frozen=True)
class VLAConfig:
    backbone: BackboneConfig
    head: HeadConfig
    embodiments: tuple[EmbodimentSlot, ...] = field(default_factory=tuple)
    aux: AuxProbeConfig | None = None  # auxiliary env-state target (training loss only; model/aux_probe.py)

    def __post_init__(self) -> None:
        if self.aux is not None and head_type(self.head) != "flow":
            raise ValueError("the auxiliary env-state probe reads the flow head's context; this head is "
                             f"{head_type(self.head)!r}")
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


def make_slots(embodiments: list[Embodiment]) -> tuple[EmbodimentSlot, ...]:
    return tuple(EmbodimentSlot.from_embodiment(e, i) for i, e in enumerate(embodiments))


class VLAModel(nn.Module):
    def __init__(self, config: VLAConfig, backbone: Backbone, head: nn.Module | None = None) -> None:
        super().__init__()
        if config.head.backbone_dim != backbone.hidden_size:
            raise ValueError(
                f"head expects backbone features of size {config.head.backbone_dim}, "
                f"backbone gives {backbone.hidden_size}"
            )
        self.config = config
        self.backbone = backbone
        self.head = head if head is not None else build_head(config.head)
        check = getattr(self.head, "check_backbone", None)  # token heads: recorded ids must fit the vocabulary
        if check is not None:
            check(backbone)
        self._slots = {s.tag: s for s in config.embodiments}
        self.aux_probe = AuxProbe(config.aux, config.head.dim) if config.aux is not None else None
        self.last_loss_terms: dict[str, float] = {}

    @classmethod
    def build(cls, backbone_config: BackboneConfig, head_overrides: dict[str, Any] | None,
              embodiments: list[Embodiment], aux: AuxProbeConfig | None = None) -> VLAModel:
        """A fresh model (backbone from its source or config, head randomly initialized)."""
        backbone = Backbone.build(backbone_config)
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

    def encode(
        self, inputs: dict[str, torch.Tensor], state: torch.Tensor, category: torch.Tensor
    ) -> HeadContext:
        """Backbone prefix (once per chunk) + the head's feature adapter and state token."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.backbone_trainable):
            features, mask = self.backbone(inputs)
        return self.head.encode_context(features, mask, state, category)

    @property
    def head_type(self) -> str:
        return head_type(self.config.head)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """batch: inputs, state [B, S], actions [B, H, A], action_mask [B, H, A], category [B]; with an aux probe
        also env_state [B, E] (normalized). The terms of the last call are kept in `last_loss_terms` (logging)."""
        if self.head_type != "flow":  # an action-space adapter runs the backbone its own way (KV-cache decoding)
            return self.head.loss(self.backbone, batch)
        ctx = self.encode(batch["inputs"], batch["state"], batch["category"])
        action_loss = self.head.loss(ctx, batch["actions"], batch["action_mask"])
        self.last_loss_terms = {"action_loss": float(action_loss.detach())}
        if self.aux_probe is None:
            return action_loss
        if "env_state" not in batch:
            raise ValueError("this model has an auxiliary env-state probe; the batch has no env_state")
        aux_loss = self.aux_probe.loss(ctx.features, ctx.mask, batch["env_state"])
        self.last_loss_terms["aux_loss"] = float(aux_loss.detach())
        return action_loss + self.aux_probe.config.weight * aux_loss

    @torch.inference_mode()
    def predict_env_state(self, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                          category: torch.Tensor) -> torch.Tensor:
        """The aux probe's estimate in physical units [B, E] (diagnostics; the policy never needs it)."""
        if self.aux_probe is None:
            raise ValueError("this model has no auxiliary env-state probe")
        ctx = self.encode(inputs, state, category)
        cfg = self.aux_probe.config
        pred = self.aux_probe(ctx.features, ctx.mask).float()
        return pred * torch.tensor(cfg.std, device=pred.device) + torch.tensor(cfg.mean, device=pred.device)
