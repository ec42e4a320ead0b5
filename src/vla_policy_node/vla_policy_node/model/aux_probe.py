"""An auxiliary training target: regress privileged scene state (e.g. the named object's position) from the
features the action head cross-attends to.

Why: with little data, the action loss alone gives the vision-language backbone a weak, indirect signal about
*which* object the instruction names; predicting that object's position from the same features the head reads
is a direct one (the "auxiliary target" trick of many small-data robot-learning setups). The probe is used only
by the training loss: at run time the policy receives images, joint states and the instruction, nothing else.
Its prediction is still available (`VLAModel.predict_env_state`) for diagnostics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vla_policy_node.model.layers import Attention


@dataclass(frozen=True)
class AuxProbeConfig:
    """names: the env-state values predicted (dataset feature names); mean/std: their normalization; weight:
    the term's weight in the training loss (the flow loss has weight 1)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weight: float = 1.0
    heads: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not self.names or not (len(self.names) == len(self.mean) == len(self.std)):
            raise ValueError(f"aux probe: names/mean/std must be non-empty and of equal length, got "
                             f"{len(self.names)}/{len(self.mean)}/{len(self.std)}")
        if not all(np.isfinite(self.mean)) or not all(s > 0 and np.isfinite(s) for s in self.std):
            raise ValueError("aux probe: mean must be finite and std positive")
        if self.weight < 0:
            raise ValueError(f"aux probe: weight must be >= 0, got {self.weight}")

    @property
    def dim(self) -> int:
        return len(self.names)

    @classmethod
    def fit(cls, names: tuple[str, ...], values: np.ndarray, weight: float = 1.0, min_std: float = 1e-2,
            ) -> AuxProbeConfig:
        """Normalization from the training values [N, E]. The std floor keeps values that barely vary (e.g. a
        block's resting height, in m) from being amplified into a noise target."""
        values = np.asarray(values, np.float64)
        return cls(names, tuple(values.mean(0)), tuple(np.maximum(values.std(0), min_std)), weight)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AuxProbeConfig | None:
        return None if data is None else cls(**data)


class AuxProbe(nn.Module):
    """A learnt query attends over the context tokens (masked), then an MLP gives the normalized env state."""

    def __init__(self, config: AuxProbeConfig, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        heads = config.heads if feature_dim % config.heads == 0 else 1
        self.query = nn.Parameter(torch.randn(1, 1, feature_dim) * 0.02)
        self.norm = nn.LayerNorm(feature_dim)
        self.attn = Attention(feature_dim, heads)
        self.mlp = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(feature_dim, config.dim))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, S, D], mask [B, S] (True = real token) -> [B, E] normalized prediction."""
        query = self.query.expand(features.shape[0], -1, -1).to(features.dtype)
        pooled = self.attn(query, self.norm(features), mask.bool())[:, 0]
        return self.mlp(pooled)

    def loss(self, features: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error against the normalized target [B, E]."""
        return torch.mean((self.forward(features, mask).float() - target.float()) ** 2)
