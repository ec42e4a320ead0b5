"""ACT's temporal-ensemble weights, the one rule both the executor and the Meta-World bench average chunks by."""

from __future__ import annotations

import numpy as np


def ensemble_weights(covers: np.ndarray, decay: float) -> np.ndarray:
    """Weights [C, T] of C chunks (oldest first) at T times: exp(-decay * i) where chunk c covers the time, i = 0
    for the oldest chunk that covers it (i counts only covering chunks), and 0 where it does not.

    covers: bool [C, T] (or [C] for one time). Normalise per time (`weights / weights.sum(axis=0)`) where at
    least one chunk covers it."""
    covers = np.asarray(covers, bool)
    rank = np.cumsum(covers, axis=0) - 1
    return np.where(covers, np.exp(-decay * rank), 0.0)
