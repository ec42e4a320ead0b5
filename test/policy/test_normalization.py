"""Normalization round-trips, handles constant dimensions, and survives JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla_policy_node.spec.normalization import (
    EmbodimentNormalization,
    NormalizationSet,
    Normalizer,
    Stats,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 6)), elements=finite),
       st.sampled_from(["mean_std", "quantile"]))
def test_round_trip(data: np.ndarray, mode: str) -> None:
    norm = Normalizer(Stats.compute(data), mode)
    back = norm.unnormalize(norm.normalize(data))
    center = norm.unnormalize(np.zeros(data.shape[1]))
    # live dimensions come back exactly; dead (constant) ones come back as their constant
    scale = data.std(0) if mode == "mean_std" else np.quantile(data, 0.99, 0) - np.quantile(data, 0.01, 0)
    live = scale > 1e-6
    np.testing.assert_allclose(back[:, live], data[:, live], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(back[:, ~live], np.broadcast_to(center[~live], back[:, ~live].shape), atol=1e-6)


def test_hand_computed_values() -> None:
    data = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]])
    stats = Stats.compute(data)
    z = Normalizer(stats, "mean_std").normalize(np.array([4.0, 10.0]))
    assert z[0] == pytest.approx(2.0 / np.sqrt(8.0 / 3.0))
    assert z[1] == 0.0  # constant gripper: no division by ~0
    q = Normalizer(stats, "quantile")
    lo, hi = np.quantile(data[:, 0], [0.01, 0.99])
    assert q.normalize(np.array([hi, 10.0]))[0] == pytest.approx(1.0)
    assert q.normalize(np.array([lo, 10.0]))[0] == pytest.approx(-1.0)
    assert q.unnormalize(np.array([5.0, 5.0]))[1] == pytest.approx(10.0)


def test_json_round_trip_and_errors() -> None:
    rng = np.random.default_rng(0)
    norm = EmbodimentNormalization.fit(rng.normal(size=(50, 3)), rng.normal(size=(50, 4)))
    nset = NormalizationSet({"arm": norm})
    again = NormalizationSet.from_dict(json.loads(json.dumps(nset.to_dict())))
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(again["arm"].action.normalize(x), norm.action.normalize(x))
    with pytest.raises(KeyError, match="no normalization stats for embodiment 'other'"):
        nset["other"]
    bad = nset.to_dict()
    bad["arm"]["state"]["std"] = [1.0]
    with pytest.raises(ValueError, match=r"normalization\['arm'\].*equally long"):
        NormalizationSet.from_dict(bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        Stats.compute(np.array([[np.nan], [1.0]]))
    with pytest.raises(ValueError, match="expected last dim 3"):
        norm.state.normalize(np.zeros(2))
