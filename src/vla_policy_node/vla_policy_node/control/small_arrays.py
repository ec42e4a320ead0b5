"""Checks on the few-element arrays of the control path (a joint vector, a command) written once.

numpy's ufuncs cost about a microsecond per call whatever the size; for 6-8 floats a Python loop over the list is
several times cheaper and gives the same answer. The tick and the input side make these checks on every message.
"""

from __future__ import annotations

import math

import numpy as np


def all_finite(values: np.ndarray) -> bool:
    """`bool(np.isfinite(values).all())` for a small float array, without numpy's per-call cost."""
    return all(map(math.isfinite, values.tolist()))
