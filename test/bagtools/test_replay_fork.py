"""The replay's comparison in a forked process (`bagtools/replay_fork.py`): it runs beside the node side, its
errors are the replay's errors (named as in the node's own process), a comparison process that dies fails the
replay instead of hanging it, and none outlives its replay. That its report is the inline comparison's, bit for
bit, is tested in test_replay_fast_path.py."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3

import pytest

from vla_policy_node.bagtools import replay_cli
from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig, ReplayError
from vla_policy_node.bagtools.replay_compare import ReplayComparison
from vla_policy_node.bagtools.synthetic import ReachPolicy
from vla_policy_node.bagtools.topics import command_topic


def _replay(emb, bag, policy=None, **config):
    return OpenLoopReplay(emb, policy or ReachPolicy(emb), ReplayConfig(latency=0.05, **config)).run(bag)


@pytest.mark.parametrize("parallel", [True, False])
def test_the_comparison_runs_beside_the_node_side_unless_asked_not_to(monkeypatch, tmp_path, sim_arm, mcap_bag,
                                                                      parallel):
    pid_file = tmp_path / "pid"
    finish = ReplayComparison.finish

    def finish_noting_its_process(self, *args):
        pid_file.write_text(str(os.getpid()))
        return finish(self, *args)

    monkeypatch.setattr(ReplayComparison, "finish", finish_noting_its_process)
    summary = _replay(sim_arm, mcap_bag, parallel=parallel).summary
    assert summary["chunk_error"]["count"] > 0
    assert (int(pid_file.read_text()) != os.getpid()) is parallel
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("parallel", [True, False])
def test_an_undecodable_recorded_command_is_named_as_the_replays_error(tmp_path, sim_arm, sqlite_bag, parallel):
    """A recorded command the comparison cannot decode fails the replay with the bag, the type, the topic and the
    message's time, wherever the comparison runs."""
    bag = shutil.copytree(sqlite_bag, tmp_path / "bad_command")
    topic = command_topic(sim_arm)
    with sqlite3.connect(next(bag.glob("*.db3"))) as conn:
        (topic_id,) = conn.execute("SELECT id FROM topics WHERE name = ?", (topic.topic,)).fetchone()
        (row, stamp) = conn.execute("SELECT id, timestamp FROM messages WHERE topic_id = ? ORDER BY timestamp "
                                    "LIMIT 1 OFFSET 40", (topic_id,)).fetchone()
        conn.execute("UPDATE messages SET data = ? WHERE id = ?", (b"\x00\x01\x00\x00\xff\xff", row))
    with pytest.raises(ReplayError, match=f"{bag}: unreadable bag: .*cannot decode {topic.msgtype} on "
                                          f"{topic.topic} at {stamp} ns"):
        _replay(sim_arm, bag, parallel=parallel)
    assert multiprocessing.active_children() == []


def test_a_comparison_process_that_dies_fails_the_replay_instead_of_hanging_it(monkeypatch, sim_arm, mcap_bag):
    tick = ReplayComparison.tick
    calls = []

    def tick_then_die(self, *args):
        calls.append(1)
        if len(calls) == 300:
            os._exit(9)  # as the kernel's out-of-memory killer would end it: no word back
        tick(self, *args)

    monkeypatch.setattr(ReplayComparison, "tick", tick_then_die)
    with pytest.raises(ReplayError, match=r"comparison process ended without a result \(exit code 9"):
        _replay(sim_arm, mcap_bag)
    assert calls == []  # the ticks were compared in the child only
    assert multiprocessing.active_children() == []


class _InterruptedPolicy(ReachPolicy):
    """Ctrl-C arrives during the fifth inference."""

    def infer(self, obs, prefix=None):
        if self.calls == 4:
            raise KeyboardInterrupt
        return super().infer(obs, prefix=prefix)


def test_an_interrupted_replay_leaves_no_comparison_process(sim_arm, mcap_bag):
    with pytest.raises(KeyboardInterrupt):
        _replay(sim_arm, mcap_bag, policy=_InterruptedPolicy(sim_arm))
    assert multiprocessing.active_children() == []


def test_the_cli_compares_beside_the_policy_unless_told_one_process(tmp_path, sim_arm):
    common = ["bag", "--robot", "sim_arm", "--checkpoint", str(tmp_path), "--latency", "0.05"]
    assert replay_cli.replay_config(replay_cli.parse_args(common), sim_arm).parallel
    assert not replay_cli.replay_config(replay_cli.parse_args([*common, "--one-process"]), sim_arm).parallel


def _replay_in_a_pool_worker(bag: str) -> tuple[float, int]:
    from vla_policy_node.spec.robot_configs import load_robot

    summary = _replay(load_robot("sim_arm"), bag).summary
    return summary["chunk_error"]["mae"], os.getpid()


def test_a_replay_in_a_pool_worker_compares_in_the_worker(mcap_bag):
    """A multiprocessing pool's workers are daemonic and may not fork children of their own: there the replay
    compares in its own process instead of failing."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        mae, worker = pool.apply(_replay_in_a_pool_worker, (str(mcap_bag),))
    assert worker != os.getpid() and mae < 1e-5
