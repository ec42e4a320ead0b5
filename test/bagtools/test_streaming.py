"""Replay and conversion stream: their peak memory does not grow with the length of the bag (the 10 GB-scale
figures are in benchmarks/bench_bagtools.py)."""

from __future__ import annotations

import tracemalloc

import pytest

from test.bagtools.helpers import demo_bag
from vla_policy_node.bagtools.dataset import convert_bags
from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig
from vla_policy_node.bagtools.synthetic import ReachPolicy


def _peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # writes and converts bags of several sizes
def test_peak_memory_does_not_grow_with_the_bag(tmp_path, sim_arm):
    short = demo_bag(tmp_path / "short", sim_arm, episodes=1, episode_s=2.0, gap_s=0.5, image_size=(96, 128))
    long = demo_bag(tmp_path / "long", sim_arm, episodes=4, episode_s=2.0, gap_s=0.5, image_size=(96, 128))
    size = {bag: sum(p.stat().st_size for p in bag.iterdir()) for bag in (short, long)}
    assert size[long] > 3.5 * size[short]
    peaks = {}
    for bag in (short, long):
        replay = _peak_bytes(lambda bag=bag: OpenLoopReplay(sim_arm, ReachPolicy(sim_arm), ReplayConfig()).run(bag))
        convert = _peak_bytes(lambda bag=bag: convert_bags([bag], sim_arm, tmp_path / f"{bag.name}_ds"))
        peaks[bag] = (replay, convert)
    for short_peak, long_peak in zip(peaks[short], peaks[long], strict=True):
        assert long_peak < 1.3 * short_peak + 1_000_000, (short_peak, long_peak)
        assert long_peak < 30_000_000
