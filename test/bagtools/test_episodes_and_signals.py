"""Episode marks -> episodes (the rules in EpisodeEvent.msg), and signals sampled between their samples."""

from __future__ import annotations

import numpy as np
import pytest

from vla_policy_node.bagtools.episodes import EpisodeTracker, EventKind
from vla_policy_node.bagtools.metrics import GripperAgreement, HorizonErrors, latency_summary
from vla_policy_node.bagtools.signals import Signal


def test_marks_make_episodes_with_outcomes_and_instructions():
    tracker = EpisodeTracker()
    tracker.set_instruction("pick the cup")
    assert tracker.apply(EventKind.START, 1.0) == (True, "episode 0 started")
    assert tracker.apply(EventKind.SUCCESS, 4.0)[0]  # ends the open episode with its outcome
    assert tracker.apply(EventKind.START, 5.0, instruction="place the cup")[0]
    assert tracker.apply(EventKind.STOP, 7.0)[0]
    assert tracker.apply(EventKind.FAILURE, 7.5)[0]  # after a STOP: labels the episode that just ended
    ok, message = tracker.apply(EventKind.STOP, 8.0)
    assert not ok and "without an open episode" in message
    tracker.apply(EventKind.START, 9.0)
    ok, message = tracker.apply(EventKind.START, 10.0)  # a START while one is open stops it first
    assert ok and "stopped by the next START" in message
    episodes = tracker.finish(0.0, 12.0)
    assert [(e.start, e.end, e.outcome) for e in episodes] == [
        (1.0, 4.0, "success"), (5.0, 7.0, "failure"), (9.0, 10.0, "unknown"), (10.0, 12.0, "unknown")]
    assert [e.instruction for e in episodes[:2]] == ["pick the cup", "place the cup"]
    assert episodes[3].implicit and any("never stopped" in w for w in tracker.warnings)
    assert tracker.current(6.0) is episodes[1] and tracker.current(4.5) is None


def test_a_bag_without_marks_is_one_episode_and_bad_marks_are_refused():
    tracker = EpisodeTracker()
    tracker.set_instruction("wave")
    assert not tracker.apply(EventKind.SUCCESS, 1.0)[0]
    (episode,) = tracker.finish(2.0, 9.0)
    assert (episode.start, episode.end, episode.implicit, episode.instruction) == (2.0, 9.0, True, "wave")
    assert EventKind.parse("discard") == EventKind.DISCARD and EventKind.parse(2) == EventKind.SUCCESS
    with pytest.raises(ValueError, match="unknown episode event"):
        EventKind.parse(9)


def test_linear_signal_interpolates_within_max_gap_only():
    signal = Signal(2, "linear", max_gap=0.5)
    for t, v in [(0.0, [0.0, 10.0]), (0.2, [2.0, 12.0]), (1.0, [10.0, 20.0])]:
        signal.append(t, v)
    values, ok = signal.sample(np.array([-0.1, 0.0, 0.1, 0.2, 0.6, 1.0, 1.1]))
    assert ok.tolist() == [False, True, True, True, False, True, False]
    np.testing.assert_allclose(values[ok], [[0, 10], [1, 11], [2, 12], [10, 20]])
    signal.append(0.9, [0, 0])  # out of order: dropped and counted
    assert signal.out_of_order == 1 and len(signal) == 3


def test_hold_signal_gives_the_command_in_effect_and_drops_history():
    signal = Signal(1, "hold", max_age=1.0)
    for i in range(1000):
        signal.append(i * 0.01, [float(i)])
    values, ok = signal.sample(np.array([0.005, 5.0, 9.99, 10.5, 11.5]))
    assert ok.tolist() == [True, True, True, True, False]
    assert values[ok, 0].tolist() == [0.0, 500.0, 999.0, 999.0]
    signal.drop_before(9.0)
    assert len(signal) == 100 and signal.first_time == pytest.approx(9.0)
    assert signal.sample(np.array([9.5]))[0][0, 0] == 950.0


def test_horizon_errors_and_gripper_agreement_accumulate():
    errors = HorizonErrors(horizon=3, dim=2)
    errors.add(np.array([0, 1, 2]), np.array([[0.1, -0.2], [np.nan, 0.4], [0.3, 0.3]]))
    errors.add(np.array([0]), np.array([[-0.3, 0.0]]))
    summary = errors.summary(("a", "b"))
    assert summary["count_per_step"] == [4, 1, 2] and summary["count"] == 7
    assert summary["mae_per_step_per_dim"][0] == pytest.approx([0.2, 0.1])
    assert summary["mae_per_step_per_dim"][1][0] is None  # nothing compared there
    assert summary["mae"] == pytest.approx((0.1 + 0.2 + 0.4 + 0.3 + 0.3 + 0.3) / 7)
    agree = GripperAgreement(horizon=2, threshold=0.5)
    agree.add(np.array([0, 0, 1]), np.array([0.0, 1.0, 0.9]), np.array([0.1, 0.2, 0.8]))
    assert agree.summary()["agreement_per_step"] == [0.5, 1.0]


def test_latency_summary_percentiles_are_numpys():
    """The report's latency percentiles (plain Python, no numpy.ma import on a first call) are np.percentile's,
    bit for bit, for any count of samples; a non-finite sample takes numpy's own path."""
    rng = np.random.default_rng(3)
    for n in [1, 2, 3, 7, 50, 99, 100, 101, 215, 1000]:
        seconds = (rng.exponential(size=n) * 10 ** rng.uniform(-4, 0)).tolist()
        ms = np.asarray(seconds) * 1e3
        summary = latency_summary(seconds)
        assert [summary["p50"], summary["p90"], summary["p99"]] == [float(np.percentile(ms, q)) for q in (50, 90, 99)]
    with np.errstate(invalid="ignore"):
        assert np.isnan(latency_summary([0.01, float("nan"), 0.02])["p50"])
