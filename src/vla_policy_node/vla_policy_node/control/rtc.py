"""Real-time chunking weights: how strongly the next chunk must follow the plan that is executing.

One shape serves both ends: the RtcPrefix handed to the sampler (frozen part from the *expected* latency)
and the executor's merge when the chunk arrives (frozen up to the *actual* arrival time). After the frozen
part the weight falls from 1 to 0 over `blend_steps` action steps with the soft-mask profile of
Black et al. (RTC, 2025): w(u) = u * (e^u - 1) / (e - 1), u going linearly from 1 to 0.
"""

from __future__ import annotations

import math

import numpy as np

_E_MINUS_1 = math.e - 1.0


def soft_mask(u: np.ndarray) -> np.ndarray:
    """RTC's decay profile on u in [0, 1]: 0 -> 0, 1 -> 1, monotone, flat near 0."""
    u = np.clip(u, 0.0, 1.0)
    return u * np.expm1(u) / _E_MINUS_1


def blend_weights(times: np.ndarray, freeze_until: float, dt: float, blend_steps: int) -> np.ndarray:
    """Weight of the running plan at each time: 1 up to `freeze_until`, then soft decay reaching 0 after
    `blend_steps` steps of `dt` (so exactly `blend_steps` grid points get a weight strictly between 0 and 1)."""
    u = 1.0 - (np.asarray(times, dtype=np.float64) - freeze_until) / ((blend_steps + 1) * dt)
    return soft_mask(u)


def frozen_steps(latency: float, dt: float) -> int:
    """Actions of a chunk whose time (stamp + k*dt) is already past when it arrives `latency` after its stamp."""
    if not latency > 0:
        return 0
    return math.ceil(latency / dt - 1e-9)


def prefix_weights(horizon: int, frozen: int, blend_steps: int) -> np.ndarray:
    """Discrete RtcPrefix weights: `frozen` ones, `blend_steps` decaying values, zeros to `horizon`."""
    k = np.arange(horizon, dtype=np.float64)
    weights = blend_weights(k, frozen - 1.0, 1.0, blend_steps)
    weights[: min(frozen, horizon)] = 1.0
    return weights
