"""Chunk execution: time stamps, dropping past actions, strategies, RTC prefix, request timing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_policy_node.control.command import CommandSpace, LateChunkError
from vla_policy_node.control.config import ExecutorConfig
from vla_policy_node.control.executor import ChunkExecutor
from vla_policy_node.control.rtc import soft_mask


def make(sim_arm, **kw) -> ChunkExecutor:
    kw.setdefault("interpolation", "linear")
    return ChunkExecutor(CommandSpace.from_embodiment(sim_arm), ExecutorConfig(**kw), inference_hz=10.0)


def ramp_chunk(h: int = 8, start: float = 0.0, slope: float = 1.0, dim: int = 6):
    """arm[k] = start + slope*k in every joint, gripper 0.01*k."""
    k = np.arange(h, dtype=float)
    arm = np.repeat((start + slope * k)[:, None], dim, axis=1)
    return arm, 0.01 * k


def test_actions_are_time_stamped_and_past_ones_dropped(sim_arm):
    ex = make(sim_arm, strategy="rtc")
    arm, grip = ramp_chunk()
    # the observation was taken at t=1.0; the chunk arrives 0.25 s later
    ex.merge(arm, grip, stamp=1.0, dt=0.1, now=1.25)
    out = ex.sample(1.25)
    np.testing.assert_allclose(out[:6], 2.5)  # action k at 1.0 + 0.1k: k=2.5 -> halfway between 2 and 3
    assert out[6] == pytest.approx(0.025)
    np.testing.assert_allclose(ex.sample(1.4)[:6], 4.0)
    assert not ex.starved


def test_runs_dry_after_last_action_and_reports_starved(sim_arm):
    ex = make(sim_arm)
    assert ex.sample(0.0) is None and ex.starved
    arm, grip = ramp_chunk(h=4)
    ex.merge(arm, grip, 0.0, 0.1, 0.0)
    np.testing.assert_allclose(ex.sample(0.3)[:6], 3.0)
    assert ex.sample(0.3001) is None
    assert ex.starved


def test_chunk_arriving_after_its_last_action_is_rejected(sim_arm):
    ex = make(sim_arm)
    arm, grip = ramp_chunk(h=4)
    with pytest.raises(LateChunkError):
        ex.merge(arm, grip, 0.0, 0.1, now=0.5)
    assert ex.rejected == 1 and ex.plan is None


def test_out_of_order_chunk_is_rejected(sim_arm):
    ex = make(sim_arm)
    arm, grip = ramp_chunk()
    ex.merge(arm, grip, 1.0, 0.1, 1.05)
    with pytest.raises(LateChunkError):
        ex.merge(arm, grip, 0.9, 0.1, 1.10)
    assert ex.accepted == 1 and ex.rejected == 1


def test_synchronous_executes_n_actions_then_requests(sim_arm):
    ex = make(sim_arm, strategy="synchronous", execute_steps=3)
    assert ex.should_request_inference(0.0)
    ex.mark_requested(0.0)
    assert not ex.should_request_inference(0.05)  # in flight
    arm, grip = ramp_chunk(h=8)
    ex.merge(arm, grip, 0.0, 0.1, 0.05)
    assert ex.plan.t_end == pytest.approx(0.2)  # actions 0, 1, 2
    assert not ex.should_request_inference(0.15)
    np.testing.assert_allclose(ex.sample(0.2)[:6], 2.0)
    assert ex.should_request_inference(0.2)
    assert ex.sample(0.21) is None  # waits (holds) while re-planning: that is synchronous execution


def test_rtc_requests_at_inference_rate(sim_arm):
    ex = make(sim_arm, strategy="rtc")
    ex.mark_requested(0.0)
    arm, grip = ramp_chunk(h=16)
    ex.merge(arm, grip, 0.0, 0.1, 0.04)
    assert not ex.should_request_inference(0.09)
    assert ex.should_request_inference(0.1)  # 10 Hz after the last request
    ex.mark_requested(0.1)
    assert not ex.should_request_inference(0.3)  # in flight
    ex.mark_failed()
    assert ex.should_request_inference(0.3)


def test_inference_overdue(sim_arm):
    ex = make(sim_arm, inference_timeout=0.5)
    ex.mark_requested(1.0)
    assert not ex.inference_overdue(1.5)
    assert ex.inference_overdue(1.51)


def test_temporal_ensembling_weights_hand_computed(sim_arm):
    m = 0.5
    ex = make(sim_arm, strategy="ensemble", ensemble_decay=m, blend_steps=0)
    a = np.full((10, 6), 1.0)
    b = np.full((10, 6), 2.0)
    c = np.full((10, 6), 4.0)
    g = np.zeros(10)
    ex.merge(a, g, 0.0, 0.1, 0.0)  # covers [0, 0.9]
    ex.merge(b, g, 0.3, 0.1, 0.3)  # covers [0.3, 1.2]
    ex.merge(c, g, 0.6, 0.1, 0.6)  # covers [0.6, 1.5]
    # At t >= now + dt the running-plan blend is over (blend_steps=0): pure ensemble.
    w0, w1, w2 = 1.0, math.exp(-m), math.exp(-2 * m)
    np.testing.assert_allclose(ex.sample(0.8)[:6], (w0 * 1 + w1 * 2 + w2 * 4) / (w0 + w1 + w2))
    # after chunk a ends only b (oldest, i=0) and c (i=1) cover t
    np.testing.assert_allclose(ex.sample(1.1)[:6], (w0 * 2 + w1 * 4) / (w0 + w1))
    np.testing.assert_allclose(ex.sample(1.4)[:6], 4.0)


def test_act_default_decay_weights_oldest_most(sim_arm):
    ex = make(sim_arm, strategy="ensemble", blend_steps=0)  # m = 0.01
    g = np.zeros(10)
    ex.merge(np.zeros((10, 6)), g, 0.0, 0.1, 0.0)
    ex.merge(np.ones((10, 6)), g, 0.1, 0.1, 0.1)
    value = ex.sample(0.5)[0]
    assert value == pytest.approx(math.exp(-0.01) / (1 + math.exp(-0.01)))
    assert value < 0.5  # the older chunk weighs more


def test_merge_is_continuous_and_blends_into_the_new_chunk(sim_arm):
    ex = make(sim_arm, strategy="rtc", blend_steps=2)
    arm_old, g = ramp_chunk(h=20, slope=0.1)
    ex.merge(arm_old, g, 0.0, 0.1, 0.0)
    now = 0.537
    before = ex.sample(now).copy()
    arm_new = np.full((20, 6), 5.0)
    ex.merge(arm_new, np.zeros(20), 0.45, 0.1, now)
    np.testing.assert_allclose(ex.sample(now), before, atol=1e-12)  # no jump at the merge
    # The new plan's grid runs from now to the chunk's last action (0.45 + 1.9) in 19 equal steps <= dt.
    spacing = (2.35 - now) / 19
    assert ex.plan.dt == pytest.approx(spacing)
    t = now + spacing  # first grid point after now: old weight soft_mask(1 - spacing / (3 dt))
    w = float(soft_mask(np.array(1 - spacing / 0.3)))
    np.testing.assert_allclose(ex.sample(t)[:6], w * t + (1 - w) * 5.0, atol=1e-12)  # old plan's value == t
    t = now + 4 * spacing  # beyond blend_steps + 1 = 3 steps of dt: only the new chunk
    np.testing.assert_allclose(ex.sample(t)[:6], 5.0)


def test_rtc_prefix_resamples_plan_and_freezes_the_latency(sim_arm):
    ex = make(sim_arm, strategy="rtc", blend_steps=2)
    arm, g = ramp_chunk(h=20, slope=0.1)  # value 0.1*k at t = k*0.1, i.e. value == t
    ex.merge(arm, g, 0.0, 0.1, 0.0)
    prefix = ex.rtc_prefix(obs_stamp=0.52, expected_latency=0.25, horizon=10, dt=0.1)
    times = 0.52 + 0.1 * np.arange(10)
    np.testing.assert_allclose(prefix.actions[:, :6], np.repeat(np.minimum(times, 1.9)[:, None], 6, axis=1))
    np.testing.assert_allclose(prefix.actions[:, 6], np.minimum(times, 1.9) / 10)
    assert prefix.frozen == 3  # actions due at +0, +0.1, +0.2 are executed before +0.25
    w = soft_mask(np.array([2 / 3, 1 / 3]))
    np.testing.assert_allclose(prefix.weights, [1, 1, 1, *w, 0, 0, 0, 0, 0])


def test_rtc_prefix_without_plan_is_none(sim_arm):
    assert make(sim_arm).rtc_prefix(0.0, 0.1) is None


def test_clear_drops_plan(sim_arm):
    ex = make(sim_arm)
    arm, g = ramp_chunk()
    ex.merge(arm, g, 0.0, 0.1, 0.0)
    ex.clear()
    assert ex.sample(0.1) is None and ex.should_request_inference(0.1)


def test_prepared_merge_is_dropped_if_the_executor_changed_meanwhile(sim_arm):
    ex = make(sim_arm)
    arm, g = ramp_chunk()
    ex.merge(arm, g, 0.0, 0.1, 0.0)
    prepared = ex.prepare(arm + 1.0, g, 0.1, 0.1, 0.1)
    assert ex.sample(0.1)[0] == pytest.approx(1.0)  # preparing changed nothing
    ex.clear()  # e.g. the policy was paused while the chunk was being merged
    assert not ex.commit(prepared)
    assert ex.plan is None
    # and a plan blended from a superseded plan is not installed either
    first = ex.prepare(arm, g, 0.2, 0.1, 0.2)
    second = ex.prepare(arm, g, 0.3, 0.1, 0.3)
    assert ex.commit(first)
    assert not ex.commit(second)
