"""Synthetic action chunks for tokenizer tests: smooth minimum-jerk segments, and the same with white noise."""

from __future__ import annotations

import numpy as np

LATENT_PER_DIM = 2  # a smooth chunk is fixed by its start and end value in each dimension


def smooth_chunks(n: int, horizon: int, dim: int, seed: int = 0) -> np.ndarray:
    """[n, horizon, dim]: each dimension moves from a to b (uniform in [-1, 1]) along a minimum-jerk profile."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0.0, 1.0, horizon)[None, :, None]
    profile = 10 * s**3 - 15 * s**4 + 6 * s**5
    a, b = rng.uniform(-1, 1, (2, n, 1, dim))
    return a + (b - a) * profile


def noisy_chunks(n: int, horizon: int, dim: int, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    return smooth_chunks(n, horizon, dim, seed) + rng.normal(0.0, sigma, (n, horizon, dim))
