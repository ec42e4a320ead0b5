"""Error accumulators for open-loop evaluation: sums per (horizon step, dimension), so memory does not grow
with the bag, and gripper open/closed agreement."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla_policy_node.control.latency import percentiles


class HorizonErrors:
    """|prediction - reference| per horizon step k and action dimension d, accumulated."""

    def __init__(self, horizon: int, dim: int) -> None:
        self.horizon = horizon
        self.dim = dim
        self.abs_sum = np.zeros((horizon, dim))
        self.sq_sum = np.zeros((horizon, dim))
        self.count = np.zeros((horizon, dim), np.int64)
        self.max_abs = np.zeros(dim)

    def add(self, steps: np.ndarray, errors: np.ndarray) -> None:
        """steps [n] ints in [0, horizon); errors [n, dim] (NaN where not comparable)."""
        steps = np.asarray(steps, dtype=np.int64)
        errors = np.asarray(errors, dtype=np.float64)
        valid = np.isfinite(errors)
        clean = np.where(valid, errors, 0.0)
        np.add.at(self.abs_sum, steps, np.abs(clean))
        np.add.at(self.sq_sum, steps, clean * clean)
        np.add.at(self.count, steps, valid.astype(np.int64))
        if clean.size:
            self.max_abs = np.maximum(self.max_abs, np.abs(clean).max(axis=0))

    def merge(self, other: HorizonErrors) -> None:
        self.abs_sum += other.abs_sum
        self.sq_sum += other.sq_sum
        self.count += other.count
        self.max_abs = np.maximum(self.max_abs, other.max_abs)

    @property
    def samples(self) -> int:
        return int(self.count.sum())

    def summary(self, names: tuple[str, ...]) -> dict[str, Any]:
        """MAE/RMSE per (step, dim), per dim, per step and overall; None where nothing was compared."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mae = self.abs_sum / self.count
            rmse = np.sqrt(self.sq_sum / self.count)
            per_dim_n = self.count.sum(0)
            per_step_n = self.count.sum(1)
            total = self.count.sum()
            return {
                "names": list(names),
                "count_per_step": per_step_n.tolist(),
                "mae_per_step_per_dim": _clean(mae),
                "rmse_per_step_per_dim": _clean(rmse),
                "mae_per_dim": _clean(self.abs_sum.sum(0) / per_dim_n),
                "rmse_per_dim": _clean(np.sqrt(self.sq_sum.sum(0) / per_dim_n)),
                "max_abs_per_dim": _clean(np.where(per_dim_n > 0, self.max_abs, np.nan)),
                "mae_per_step": _clean(self.abs_sum.sum(1) / per_step_n),
                "mae": _scalar(self.abs_sum.sum() / total) if total else None,
                "rmse": _scalar(math.sqrt(self.sq_sum.sum() / total)) if total else None,
                "count": int(total),
            }


class GripperAgreement:
    """Fraction of compared steps where prediction and reference are on the same side of `threshold`."""

    def __init__(self, horizon: int, threshold: float) -> None:
        self.threshold = threshold
        self.agree = np.zeros(horizon, np.int64)
        self.total = np.zeros(horizon, np.int64)

    def add(self, steps: np.ndarray, predicted: np.ndarray, reference: np.ndarray) -> None:
        valid = np.isfinite(predicted) & np.isfinite(reference)
        steps = np.asarray(steps, dtype=np.int64)[valid]
        same = (predicted[valid] < self.threshold) == (reference[valid] < self.threshold)
        np.add.at(self.total, steps, 1)
        np.add.at(self.agree, steps, same.astype(np.int64))

    def merge(self, other: GripperAgreement) -> None:
        self.agree += other.agree
        self.total += other.total

    def summary(self) -> dict[str, Any]:
        total = int(self.total.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            per_step = self.agree / self.total
        return {
            "threshold": self.threshold,
            "agreement": _scalar(self.agree.sum() / total) if total else None,
            "agreement_per_step": _clean(per_step),
            "count": total,
        }


def _scalar(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _clean(array: np.ndarray) -> Any:
    """ndarray -> nested lists with None for NaN (JSON has no NaN)."""
    if np.ndim(array) == 0:
        return _scalar(float(array))
    return [_clean(a) for a in array]


def latency_summary(latencies_s: list[float]) -> dict[str, Any]:
    """Percentiles of inference latency in milliseconds."""
    if not latencies_s:
        return {"count": 0}
    ms = np.asarray(latencies_s) * 1e3
    values = ms.tolist()
    if all(map(math.isfinite, values)):  # np.percentile's bits, without its first call's import of numpy.ma
        p50, p90, p99 = percentiles(values, (50.0, 90.0, 99.0))
    else:
        p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return {
        "count": int(ms.size),
        "mean": float(ms.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(ms.max()),
    }
