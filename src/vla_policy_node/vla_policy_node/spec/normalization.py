"""State/action normalization stored with a checkpoint, so model outputs come back in physical units.

numpy only: the dataset tools compute stats and the policy applies them without needing torch here.
Two modes, per quantity: `mean_std` (z-score) and `quantile` ([q01, q99] -> [-1, 1], as GR00T/pi0 do for
actions with outliers). Dimensions whose spread is ~0 (a gripper never used, a locked joint) map to 0 and
back to their constant, instead of dividing by a tiny number and amplifying noise into huge commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vla_policy_node.spec.embodiment import Embodiment

NormMode = Literal["mean_std", "quantile"]
_EPS = 1e-6


@dataclass(frozen=True)
class Stats:
    """Per-dimension statistics of one quantity (state or action) over a dataset."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def compute(cls, data: np.ndarray) -> Stats:
        """Stats of `data` [N, D] (any leading dims are flattened)."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"Stats.compute needs [N, D] data with N > 0, got shape {data.shape}")
        flat = data.reshape(-1, data.shape[-1])
        if not np.all(np.isfinite(flat)):
            raise ValueError("Stats.compute: data contains NaN or Inf")
        return cls(
            mean=flat.mean(0),
            std=flat.std(0),
            q01=np.quantile(flat, 0.01, axis=0),
            q99=np.quantile(flat, 0.99, axis=0),
            min=flat.min(0),
            max=flat.max(0),
        )

    @classmethod
    def weighted(cls, data: np.ndarray, weights: np.ndarray) -> Stats:
        """Stats of the distribution that draws row i of `data` [N, D] with probability weights[i] / sum: what a
        trainer sampling a weighted mixture of datasets sees. Quantiles are that distribution's inverse CDF (the
        smallest value whose cumulative weight reaches q), so integer weights equal repeating rows."""
        data = np.asarray(data, dtype=np.float64)
        p = np.asarray(weights, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] == 0 or p.shape != (data.shape[0],):
            raise ValueError(f"Stats.weighted needs [N, D] data with N > 0 and N weights, got {data.shape}, {p.shape}")
        if not (np.all(np.isfinite(data)) and np.all(np.isfinite(p)) and np.all(p >= 0) and p.sum() > 0):
            raise ValueError("Stats.weighted: NaN/Inf data or weights, negative weights, or all weights 0")
        p = p / p.sum()
        mean = p @ data
        order = np.argsort(data, axis=0, kind="stable")
        cumulative = np.cumsum(p[order], axis=0)

        def quantile(q: float) -> np.ndarray:
            first = np.argmax(cumulative >= q - 1e-12, axis=0)  # float sums: q itself may fall a ulp short
            columns = np.arange(data.shape[1])
            return data[order[first, columns], columns]

        return cls(mean=mean, std=np.sqrt(np.maximum(p @ (data - mean) ** 2, 0.0)), q01=quantile(0.01),
                   q99=quantile(0.99), min=data.min(0), max=data.max(0))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def to_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in ("mean", "std", "q01", "q99", "min", "max")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        keys = ("mean", "std", "q01", "q99", "min", "max")
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"normalization stats missing {missing}")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in keys}
        dims = {a.shape for a in arrays.values()}
        if len(dims) != 1 or len(next(iter(dims))) != 1:
            raise ValueError(f"normalization stats must be 1-D and equally long, got shapes {dims}")
        if not all(np.all(np.isfinite(a)) for a in arrays.values()):
            raise ValueError("normalization stats contain NaN or Inf")
        return cls(**arrays)


@dataclass(frozen=True)
class Normalizer:
    """Maps one quantity between physical units and the model's normalized space."""

    stats: Stats
    mode: NormMode = "mean_std"

    def _center_scale(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "mean_std":
            return self.stats.mean, self.stats.std
        if self.mode == "quantile":
            return (self.stats.q99 + self.stats.q01) / 2.0, (self.stats.q99 - self.stats.q01) / 2.0
        raise ValueError(f"unknown normalization mode {self.mode!r}")

    def normalize(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.stats.dim:
            raise ValueError(f"normalize: expected last dim {self.stats.dim}, got {x.shape[-1]}")
        center, scale = self._center_scale()
        live = scale > _EPS
        return np.where(live, (x - center) / np.where(live, scale, 1.0), 0.0)

    def unnormalize(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.shape[-1] != self.stats.dim:
            raise ValueError(f"unnormalize: expected last dim {self.stats.dim}, got {y.shape[-1]}")
        center, scale = self._center_scale()
        live = scale > _EPS
        return np.where(live, y * scale + center, center)


@dataclass(frozen=True)
class EmbodimentNormalization:
    """Normalization of one embodiment's state and actions."""

    state: Normalizer
    action: Normalizer

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": {"mode": self.state.mode, **self.state.stats.to_dict()},
            "action": {"mode": self.action.mode, **self.action.stats.to_dict()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbodimentNormalization:
        parts = {}
        for key in ("state", "action"):
            if key not in data:
                raise ValueError(f"normalization has no {key!r} entry")
            entry = dict(data[key])
            mode = entry.pop("mode", "mean_std")
            if mode not in ("mean_std", "quantile"):
                raise ValueError(f"normalization {key}.mode must be mean_std or quantile, got {mode!r}")
            parts[key] = Normalizer(Stats.from_dict(entry), mode)
        return cls(**parts)

    @classmethod
    def fit(
        cls,
        states: np.ndarray,
        actions: np.ndarray,
        state_mode: NormMode = "mean_std",
        action_mode: NormMode = "quantile",
    ) -> EmbodimentNormalization:
        return cls(Normalizer(Stats.compute(states), state_mode), Normalizer(Stats.compute(actions), action_mode))

    @classmethod
    def identity(cls, state_dim: int, action_dim: int) -> EmbodimentNormalization:
        """No-op normalization (mean 0, std 1), for untrained models and tests."""

        def unit(d: int) -> Stats:
            zeros, ones = np.zeros(d), np.ones(d)
            return Stats(mean=zeros, std=ones, q01=-ones, q99=ones, min=-ones, max=ones)

        return cls(Normalizer(unit(state_dim)), Normalizer(unit(action_dim)))


@dataclass
class NormalizationSet:
    """Normalization per embodiment tag, as stored in a checkpoint's normalization.json."""

    by_tag: dict[str, EmbodimentNormalization] = field(default_factory=dict)

    def __getitem__(self, tag: str) -> EmbodimentNormalization:
        if tag not in self.by_tag:
            raise KeyError(f"no normalization stats for embodiment {tag!r}; have {sorted(self.by_tag)}")
        return self.by_tag[tag]

    def to_dict(self) -> dict[str, Any]:
        return {tag: norm.to_dict() for tag, norm in sorted(self.by_tag.items())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizationSet:
        if not isinstance(data, dict):
            raise ValueError("normalization must map embodiment tags to stats")
        out = {}
        for tag, entry in data.items():
            try:
                out[tag] = EmbodimentNormalization.from_dict(entry)
            except ValueError as exc:
                raise ValueError(f"normalization[{tag!r}]: {exc}") from exc
        return cls(out)


def normalization_from_limits(embodiment: Embodiment) -> NormalizationSet:
    """Stats of a uniform distribution over each joint's (and the gripper's) range.

    For joint-position embodiments before any data exists (a freshly built model, the demo): outputs of an
    untrained model then land inside the joints' ranges instead of around 0 rad. Trained models use data stats.
    """
    if embodiment.action_space.type != "joint_position":
        raise ValueError(f"limit-based normalization needs joint_position actions, not {embodiment.action_space.type}")
    ranges = [(j.lower, j.upper) for j in embodiment.joints]
    if embodiment.gripper is not None:
        ranges.append((embodiment.gripper.lower, embodiment.gripper.upper))
    lo, hi = (np.array(v, dtype=np.float64) for v in zip(*ranges, strict=True))
    span = hi - lo
    stats = Stats(mean=(lo + hi) / 2, std=span / np.sqrt(12.0), q01=lo + 0.01 * span, q99=lo + 0.99 * span,
                  min=lo, max=hi)
    norm = EmbodimentNormalization(Normalizer(stats, "mean_std"), Normalizer(stats, "quantile"))
    return NormalizationSet({embodiment.tag: norm})
