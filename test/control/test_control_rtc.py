"""RTC weights and latency compensation, hand-computed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_policy_node.control.rtc import blend_weights, frozen_steps, prefix_weights, soft_mask


def w(u: float) -> float:
    return u * (math.exp(u) - 1) / (math.e - 1)


def test_soft_mask_profile():
    np.testing.assert_allclose(soft_mask(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])), [0.0, 0.0, w(0.5), 1.0, 1.0])


@pytest.mark.parametrize(
    ("latency", "dt", "expected"),
    [(0.0, 0.1, 0), (0.05, 0.1, 1), (0.1, 0.1, 1), (0.25, 0.1, 3), (0.3, 0.1, 3), (0.31, 0.1, 4), (0.07, 0.02, 4)],
)
def test_frozen_steps_count_actions_due_before_arrival(latency, dt, expected):
    # action k is due at k*dt after the observation; those strictly before the arrival are frozen
    assert frozen_steps(latency, dt) == expected


def test_prefix_weights_hand_computed():
    weights = prefix_weights(horizon=8, frozen=3, blend_steps=2)
    np.testing.assert_allclose(weights, [1, 1, 1, w(2 / 3), w(1 / 3), 0, 0, 0])


def test_prefix_weights_without_blend_are_a_hard_mask():
    np.testing.assert_allclose(prefix_weights(5, 2, 0), [1, 1, 0, 0, 0])
    np.testing.assert_allclose(prefix_weights(4, 0, 1), [w(0.5), 0, 0, 0])
    np.testing.assert_allclose(prefix_weights(3, 7, 2), [1, 1, 1])


def test_blend_weights_in_continuous_time():
    times = np.array([0.9, 1.0, 1.1, 1.2, 1.3, 1.4])
    np.testing.assert_allclose(
        blend_weights(times, freeze_until=1.0, dt=0.1, blend_steps=2), [1, 1, w(2 / 3), w(1 / 3), 0, 0], atol=1e-12
    )
