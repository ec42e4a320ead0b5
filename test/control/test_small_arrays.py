"""all_finite is np.isfinite(...).all() for the control path's small arrays, NaN and both infinities included."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla_policy_node.control.small_arrays import all_finite


@given(arrays(np.float64, st.integers(0, 9), elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_all_finite_equals_numpy(values: np.ndarray) -> None:
    assert all_finite(values) is bool(np.isfinite(values).all())


def test_one_bad_value_anywhere_is_caught() -> None:
    for bad in (np.nan, np.inf, -np.inf):
        for i in range(7):
            values = np.zeros(7)
            values[i] = bad
            assert not all_finite(values)
    assert all_finite(np.zeros(7)) and all_finite(np.empty(0))
