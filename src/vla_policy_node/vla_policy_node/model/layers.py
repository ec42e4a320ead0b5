"""Building blocks of the action head: per-embodiment layers, timestep encodings, DiT blocks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CategorySpecificLinear(nn.Module):
    """A linear layer with one weight matrix per embodiment, selected per sample by an integer id."""

    def __init__(self, num_categories: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_categories, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(num_categories, out_dim))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(in_dim))

    def forward(self, x: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """x [B, T, in] (or [B, in]), category [B] -> [B, T, out]."""
        weight = self.weight[category]
        bias = self.bias[category]
        if x.dim() == 2:
            return torch.einsum("bi,bio->bo", x, weight) + bias
        return torch.einsum("bti,bio->bto", x, weight) + bias[:, None, :]


class CategorySpecificMLP(nn.Module):
    """Two per-embodiment linear layers with a ReLU, as GR00T's state encoder and action decoder."""

    def __init__(self, num_categories: int, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layer1 = CategorySpecificLinear(num_categories, in_dim, hidden_dim)
        self.layer2 = CategorySpecificLinear(num_categories, hidden_dim, out_dim)

    def forward(self, x: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return self.layer2(F.relu(self.layer1(x, category)), category)


def sinusoidal_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sin/cos encoding of (possibly fractional) timesteps; [...] -> [..., dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    args = timesteps.float()[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ActionEncoder(nn.Module):
    """Noisy actions + timestep -> tokens, per embodiment (GR00T's MultiEmbodimentActionEncoder)."""

    def __init__(self, num_categories: int, action_dim: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.w1 = CategorySpecificLinear(num_categories, action_dim, dim)
        self.w2 = CategorySpecificLinear(num_categories, 2 * dim, dim)
        self.w3 = CategorySpecificLinear(num_categories, dim, dim)

    def forward(self, actions: torch.Tensor, timestep: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """actions [B, H, A], timestep [B] (discretized) -> [B, H, dim]."""
        horizon = actions.shape[1]
        a = self.w1(actions, category)
        tau = sinusoidal_embedding(timestep, self.dim).to(a.dtype)[:, None, :].expand(-1, horizon, -1)
        x = F.silu(self.w2(torch.cat([a, tau], dim=-1), category))
        return self.w3(x, category)


class TimestepEmbedding(nn.Module):
    """Discretized flow time -> conditioning vector for adaptive layer norms."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(timestep, self.freq_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift come from the timestep embedding (DiT's adaLN)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-5)
        self.proj = nn.Linear(dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(F.silu(temb)).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale[:, None, :]) + shift[:, None, :]


class Attention(nn.Module):
    """Multi-head attention on scaled_dot_product_attention; keys may come from another sequence."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        kv_dim = kv_dim or dim
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """context_mask [B, S] bool, True = attend."""
        context = x if context is None else context
        b, t, d = x.shape
        s = context.shape[1]
        h = self.heads
        q = self.q(x).view(b, t, h, d // h).transpose(1, 2)
        k = self.k(context).view(b, s, h, d // h).transpose(1, 2)
        v = self.v(context).view(b, s, h, d // h).transpose(1, 2)
        mask = None if context_mask is None else context_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__(nn.Linear(dim, mult * dim), nn.GELU(approximate="tanh"), nn.Linear(mult * dim, dim))


class DiTBlock(nn.Module):
    """adaLN -> (cross- or self-) attention -> LayerNorm -> MLP, with residuals."""

    def __init__(self, dim: int, heads: int, cross_dim: int | None) -> None:
        super().__init__()
        self.cross = cross_dim is not None
        self.norm1 = AdaLayerNorm(dim)
        self.attn = Attention(dim, heads, kv_dim=cross_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None
    ) -> torch.Tensor:
        h = self.norm1(x, temb)
        x = x + (self.attn(h, context, context_mask) if self.cross else self.attn(h))
        return x + self.ff(self.norm2(x))


class EncoderBlock(nn.Module):
    """Pre-norm self-attention block for the small adapter over the backbone features."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), None, mask)
        return x + self.ff(self.norm2(x))
