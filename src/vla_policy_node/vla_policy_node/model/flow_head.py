"""GR00T-N1.5-style flow-matching action head: a DiT that cross-attends to the backbone's features.

Flow convention (GR00T/pi0): x_t = (1 - t) * noise + t * action, t = 0 is pure noise and t = 1 the action;
the network predicts the velocity action - noise. Training draws u ~ Beta(alpha, beta) and uses
t = (s - u) / s (s = 0.999), which, like GR00T, puts more samples at the noisy end where denoising is hardest.
Sampling integrates with Euler steps; the backbone features are adapted once and reused by every step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vla_policy_node.model.action_head import ActionHead, HeadLoss, Prediction
from vla_policy_node.model.head_registry import register_head
from vla_policy_node.model.layers import (
    ActionEncoder,
    AdaLayerNorm,
    CategorySpecificMLP,
    DiTBlock,
    EncoderBlock,
    TimestepEmbedding,
)

if TYPE_CHECKING:
    from vla_policy_node.model.backbone import Backbone


@dataclass(frozen=True)
class FlowHeadConfig:
    """Defaults follow GR00T N1.5's head (16 DiT layers, width 1536, 4-layer feature adapter, 32 future tokens)."""

    type: ClassVar[str] = "flow"  # stored under this "type" in vla_config.json
    guided_by_prefix: ClassVar[bool] = True  # RTC: guided sampling toward the executing chunk
    provides_context: ClassVar[bool] = True  # the auxiliary probe reads the adapted features

    backbone_dim: int
    dim: int = 1536
    layers: int = 16
    heads: int = 32
    adapter_layers: int = 4
    horizon: int = 16
    max_state_dim: int = 64
    max_action_dim: int = 32
    max_embodiments: int = 32
    num_future_tokens: int = 32
    num_steps: int = 4
    timestep_buckets: int = 1000
    beta_alpha: float = 1.5
    beta_beta: float = 1.0
    noise_s: float = 0.999
    interleave_self_attention: bool = True

    def __post_init__(self) -> None:
        for key in ("backbone_dim", "dim", "layers", "heads", "horizon", "max_state_dim", "max_action_dim",
                    "max_embodiments", "num_steps", "timestep_buckets"):
            if getattr(self, key) <= 0:
                raise ValueError(f"FlowHeadConfig.{key} must be positive, got {getattr(self, key)}")
        if self.dim % self.heads:
            raise ValueError(f"FlowHeadConfig.dim {self.dim} must be divisible by heads {self.heads}")

    @property
    def head_name(self) -> str:
        return "flow"

    @property
    def discrete(self) -> bool:
        return False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowHeadConfig:
        return cls(**data)


@dataclass
class HeadContext:
    """Backbone features after the adapter: computed once per chunk, shared by all denoising steps."""

    features: torch.Tensor  # [B, S, dim]
    mask: torch.Tensor  # [B, S] bool, True = real token
    state_token: torch.Tensor  # [B, 1, dim]
    category: torch.Tensor  # [B] embodiment index


@register_head("flow", FlowHeadConfig)
class FlowMatchingHead(ActionHead):
    def __init__(self, config: FlowHeadConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.feature_norm = nn.LayerNorm(c.backbone_dim)
        self.feature_proj = nn.Linear(c.backbone_dim, c.dim)
        self.adapter = nn.ModuleList([EncoderBlock(c.dim, c.heads) for _ in range(c.adapter_layers)])
        self.state_encoder = CategorySpecificMLP(c.max_embodiments, c.max_state_dim, c.dim, c.dim)
        self.action_encoder = ActionEncoder(c.max_embodiments, c.max_action_dim, c.dim)
        self.action_decoder = CategorySpecificMLP(c.max_embodiments, c.dim, c.dim, c.max_action_dim)
        self.future_tokens = nn.Parameter(torch.randn(1, c.num_future_tokens, c.dim) * 0.02)
        self.action_pos = nn.Parameter(torch.randn(1, c.horizon, c.dim) * 0.02)
        self.time_embed = TimestepEmbedding(c.dim)
        self.blocks = nn.ModuleList(
            [
                DiTBlock(c.dim, c.heads, None if (c.interleave_self_attention and i % 2) else c.dim)
                for i in range(c.layers)
            ]
        )
        self.norm_out = AdaLayerNorm(c.dim)

    # --- shared pieces -------------------------------------------------------------------------------------
    def encode_context(
        self, features: torch.Tensor, mask: torch.Tensor, state: torch.Tensor, category: torch.Tensor
    ) -> HeadContext:
        """features [B, S, backbone_dim], mask [B, S], state [B, max_state_dim] (normalized, zero-padded)."""
        mask = mask.bool()
        x = self.feature_proj(self.feature_norm(features))
        for block in self.adapter:
            x = block(x, mask)
        state_token = self.state_encoder(state.to(x.dtype), category)[:, None, :]
        return HeadContext(features=x, mask=mask, state_token=state_token, category=category)

    def velocity(self, ctx: HeadContext, actions: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Predicted velocity [B, H, max_action_dim] for noisy actions at discretized timestep [B]."""
        b = actions.shape[0]
        horizon = actions.shape[1]
        if horizon > self.config.horizon:
            raise ValueError(f"horizon {horizon} exceeds the head's {self.config.horizon}")
        action_tokens = self.action_encoder(actions.to(ctx.features.dtype), timestep, ctx.category)
        action_tokens = action_tokens + self.action_pos[:, :horizon]
        future = self.future_tokens.expand(b, -1, -1)
        x = torch.cat([ctx.state_token, future, action_tokens], dim=1)
        temb = self.time_embed(timestep)
        for block in self.blocks:
            x = block(x, temb, ctx.features, ctx.mask)
        x = self.norm_out(x, temb)[:, -horizon:]
        return self.action_decoder(x, ctx.category)

    def discretize(self, t: torch.Tensor) -> torch.Tensor:
        return (t * self.config.timestep_buckets).long().clamp_(0, self.config.timestep_buckets - 1)

    # --- training ------------------------------------------------------------------------------------------
    def sample_time(self, batch: int, device: torch.device) -> torch.Tensor:
        """t = (s - u) / s with u ~ Beta(alpha, beta), clamped: u > s would give a slightly negative time.

        torch.distributions takes no generator, so training reproducibility comes from the global seed.
        """
        c = self.config
        u = torch.distributions.Beta(c.beta_alpha, c.beta_beta).sample((batch,)).to(device)
        return ((c.noise_s - u) / c.noise_s).clamp_(0.0, 1.0)

    def loss(self, ctx: HeadContext, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """Masked flow-matching MSE. actions [B, H, max_action_dim] normalized; action_mask same shape (bool)."""
        b = actions.shape[0]
        noise = torch.randn(actions.shape, device=actions.device, dtype=actions.dtype)
        t = self.sample_time(b, actions.device).to(actions.dtype)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
        target = actions - noise
        pred = self.velocity(ctx, x_t, self.discretize(t)).to(actions.dtype)
        mask = action_mask.to(actions.dtype)
        err = F.mse_loss(pred, target, reduction="none") * mask
        return err.sum() / mask.sum().clamp_min(1.0)

    # --- inference -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        ctx: HeadContext,
        horizon: int | None = None,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
        prefix_weights: torch.Tensor | None = None,
        step_callback=None,
    ) -> torch.Tensor:
        """Euler integration from noise to actions [B, H, max_action_dim] (normalized units).

        Real-time chunking guidance: with `prefix` [B, H, A] and `prefix_weights` [B, H] in [0, 1], each step
        pulls the current estimate of the clean chunk (x + (1 - t) v) toward the prefix by the weights and
        re-derives the velocity from it. Weight 1 makes the final chunk equal the prefix there exactly, weight 0
        leaves the model free; intermediate weights blend without a jump at the seam.
        """
        c = self.config
        horizon = horizon or c.horizon
        num_steps = num_steps or c.num_steps
        b = ctx.features.shape[0]
        dtype = ctx.features.dtype
        x = torch.randn((b, horizon, c.max_action_dim), generator=generator, device=ctx.features.device).to(dtype)
        if prefix is not None:
            if prefix_weights is None or prefix.shape != x.shape or prefix_weights.shape != x.shape[:2]:
                raise ValueError(
                    f"RTC prefix must be {tuple(x.shape)} with weights {tuple(x.shape[:2])}, "
                    f"got {None if prefix is None else tuple(prefix.shape)}"
                )
            w = prefix_weights.to(dtype)[:, :, None]
            prefix = prefix.to(dtype)
        for i in range(num_steps):
            t = i / num_steps
            timestep = torch.full((b,), int(t * c.timestep_buckets), device=x.device, dtype=torch.long)
            v = self.velocity(ctx, x, timestep).to(dtype)
            if prefix is not None:
                clean = x + (1 - t) * v
                clean = (1 - w) * clean + w * prefix
                v = (clean - x) / (1 - t)
            x = x + v / num_steps
            if step_callback is not None:
                step_callback(i)
        return x

    # --- the ActionHead interface (VLAModel / VLAPolicy) ---------------------------------------------------
    @classmethod
    def from_config(cls, config: FlowHeadConfig, directory: Path | None = None) -> FlowMatchingHead:
        return cls(config)

    def encode(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
               category: torch.Tensor) -> HeadContext:
        """Backbone prefix (once per chunk; with gradients only when the backbone trains) + the feature adapter
        and state token."""
        features, mask = backbone(inputs)
        return self.encode_context(features, mask, state, category)

    def context(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = self.encode(backbone, inputs, state, category)
        return ctx.features, ctx.mask

    def compute_loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> HeadLoss:
        ctx = self.encode(backbone, batch["inputs"], batch["state"], batch["category"])
        return HeadLoss(self.loss(ctx, batch["actions"], batch["action_mask"]), ctx.features, ctx.mask)

    def predict(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor, *, generator: torch.Generator | None = None, sampling: Any = None,
                num_steps: int | None = None, prefix: torch.Tensor | None = None,
                prefix_weights: torch.Tensor | None = None, on_prefill: Callable[[], None] | None = None,
                on_step: Callable[[int], None] | None = None,
                sample_fn: Callable[..., torch.Tensor] | None = None) -> Prediction:
        ctx = self.encode(backbone, inputs, state, category)
        if on_prefill is not None:
            on_prefill()
        sample = sample_fn or self.sample
        actions = sample(ctx, horizon=self.config.horizon, num_steps=num_steps, generator=generator, prefix=prefix,
                         prefix_weights=prefix_weights, step_callback=on_step)
        return Prediction(actions=actions, tokens=[])
