"""The replay's fast paths change nothing the replay computes: on recorded bags, clean and with the faults of real
recordings, every control tick's command and the whole report (every figure but the wall-clock ones) are
bit-identical to those of the general path. The fast paths: joint states, commands, camera images and
instructions read straight from CDR (`msgs/fast_cdr.py`) instead of by rosbags' deserializer and the message
decoders; the comparison in a forked process (`replay_fork.py`) instead of in the node side's; settled
predictions and ticks compared in batches instead of one at a time."""

from __future__ import annotations

import pickle

import pytest

from test.bagtools.helpers import demo_bag
from vla_policy_node.bagtools import replay as replay_module
from vla_policy_node.bagtools import replay_compare
from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig
from vla_policy_node.bagtools.synthetic import ReachPolicy, RecordingFaults
from vla_policy_node.control.loop import ControlLoop

FAULTS = RecordingFaults(dropouts=(("scene", 1.0, 1.5),), late_every=7, late_s=0.05, swap_joint_states_every=5,
                         shuffle_joints=True)


def _replayed(monkeypatch, emb, bag, target, *, fast: bool, parallel: bool = True):
    """(every tick's command, the summary without wall-clock figures, the plot series) of one replay."""
    commands = []
    tick = ControlLoop.tick

    def recording_tick(self, now, *args, **kwargs):
        command = tick(self, now, *args, **kwargs)
        commands.append(None if command is None else
                        (now, command.arm.tobytes(), command.gripper, command.source, command.hold))
        return command

    with monkeypatch.context() as patch:
        patch.setattr(ControlLoop, "tick", recording_tick)
        if not fast:
            patch.setattr(replay_module._Session, "_raw_topics", lambda self, topics: set())
        config = ReplayConfig(target=target, latency=0.05, parallel=parallel)
        result = OpenLoopReplay(emb, ReachPolicy(emb), config).run(bag)
    summary = {k: v for k, v in result.summary.items() if k not in ("throughput", "latency_ms")}
    plots = [(s.times.tobytes(), s.values.tobytes()) for s in
             (result.plots.reference, result.plots.executed, result.plots.predicted_first)]
    return commands, pickle.dumps(summary), plots, result.summary


def _bag(tmp_path, emb, robot: str, faults: bool):
    """A demonstration bag, with the recording faults of a real recording when `faults`."""
    if not faults:
        return demo_bag(tmp_path / "bag", emb)
    if robot == "sim_arm":
        return demo_bag(tmp_path / "bag", emb, faults=RecordingFaults(late_every=5, late_s=0.03,
                                                                    swap_joint_states_every=4, shuffle_joints=True))
    return demo_bag(tmp_path / "bag", emb, faults=FAULTS)


@pytest.mark.parametrize("robot, faults, target", [
    ("franka", False, "auto"),
    ("franka", True, "auto"),
    ("franka", True, "joint_states"),
    ("sim_arm", True, "auto"),
])
def test_fast_path_replays_bit_identically(request, monkeypatch, tmp_path, robot, faults, target):
    emb = request.getfixturevalue(robot)
    bag = _bag(tmp_path, emb, robot, faults)
    fast = _replayed(monkeypatch, emb, bag, target, fast=True)
    general = _replayed(monkeypatch, emb, bag, target, fast=False)
    summary = fast[3]
    assert summary["counts"]["ticks"] > 500 and summary["counts"]["chunks_accepted"] > 20  # a real replay
    assert len(fast[0]) == summary["counts"]["ticks"]
    assert fast[0] == general[0]  # every tick's command, bit for bit
    assert fast[1] == general[1]  # the report's figures
    assert fast[2] == general[2]  # the plots


@pytest.mark.parametrize("robot, target", [("franka", "auto"), ("franka", "joint_states"), ("sim_arm", "auto")])
def test_batched_comparison_is_the_one_at_a_time_comparison(request, monkeypatch, tmp_path, robot, target):
    """Settled chunks and ticks are compared with the recording in batches; compared one at a time (as soon as
    each settles) every figure of the report and every plot are the same bits, on a bag with recording faults."""
    emb = request.getfixturevalue(robot)
    bag = _bag(tmp_path, emb, robot, faults=True)
    batched = _replayed(monkeypatch, emb, bag, target, fast=True)
    with monkeypatch.context() as patch:
        patch.setattr(replay_compare, "TICK_BATCH", 1)
        patch.setattr(replay_compare, "CHUNK_BATCH", 1)
        single = _replayed(monkeypatch, emb, bag, target, fast=True)
    assert batched[3]["chunk_error"]["count"] > 100 and batched[3]["command_error"]["count"] > 100
    assert batched[0] == single[0]
    assert batched[1] == single[1]
    assert batched[2] == single[2]


@pytest.mark.parametrize("robot, faults, target", [("franka", True, "auto"), ("franka", False, "joint_states"),
                                                   ("sim_arm", True, "auto")])
def test_forked_comparison_is_the_inline_one(request, monkeypatch, tmp_path, robot, faults, target):
    """The comparison in a forked process beside the node side gives the report and the plots of the comparison
    in the node's own process, bit for bit (and the node side sends the same commands either way)."""
    emb = request.getfixturevalue(robot)
    bag = _bag(tmp_path, emb, robot, faults)
    forked = _replayed(monkeypatch, emb, bag, target, fast=True, parallel=True)
    inline = _replayed(monkeypatch, emb, bag, target, fast=True, parallel=False)
    summary = forked[3]
    assert summary["chunk_error"]["count"] > 100 and summary["command_error"]["count"] > 100
    assert summary["episodes"] and summary["gripper"] is not None
    assert forked[0] == inline[0]
    assert forked[1] == inline[1]
    assert forked[2] == inline[2]
