"""Open-loop replay: a bag recorded from a known policy replays with ~zero error against it and clearly more
against another; bags from other layouts work; broken bags are refused with the problem named, no report."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest

from test.bagtools.helpers import StampSeeded, demo_bag, drop_topic, humble_layout, recompress_mcap
from vla_policy_node.bagtools import replay_cli
from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig, ReplayError
from vla_policy_node.bagtools.report import REPORT_FILES, write_report
from vla_policy_node.bagtools.synthetic import ReachPolicy, RecordingFaults
from vla_policy_node.control.config import ControlConfig, ExecutorConfig, PlausibilityConfig
from vla_policy_node.spec.deployment import Deployment, write_deployment


def _replay(emb, policy, bag, **config):
    return OpenLoopReplay(emb, policy, ReplayConfig(**config)).run(bag).summary


def test_known_policy_replays_with_near_zero_error_and_another_policy_does_not(sim_arm, mcap_bag):
    same = _replay(sim_arm, ReachPolicy(sim_arm), mcap_bag)
    other = _replay(sim_arm, ReachPolicy(sim_arm, salt="another goal"), mcap_bag)
    chunk = same["chunk_error"]
    assert chunk["count"] > 1000 and max(chunk["mae_per_step"]) < 1e-5 and chunk["max_abs_per_dim"][0] < 1e-4
    assert same["gripper"]["agreement"] == 1.0
    assert other["chunk_error"]["mae"] > 1000 * chunk["mae"] and other["chunk_error"]["mae"] > 0.05
    assert other["gripper"]["agreement"] < 0.9
    # what the node would have sent follows the recording more closely too; not exactly: the executor and the
    # safety filter (velocity/acceleration limits) smooth the recorded starts of each reach
    assert same["command_error"]["mae"] < 0.5 * other["command_error"]["mae"]
    assert same["target"] == "commands" and same["counts"]["chunks_accepted"] == same["counts"]["inferences"] > 20
    assert len(same["episodes"]) == 2 and all(e["outcome"] == "success" for e in same["episodes"])
    assert same["counts"]["chunks_outside_episodes"] > 0  # the resets between episodes are not scored
    assert same["latency_ms"]["count"] == same["counts"]["observations"]


def test_tiny_vla_checkpoint_is_recognised_against_another(tmp_path, sim_arm, tiny_checkpoint, one_torch_thread):
    """Commands recorded from a tiny VLA (re-planning every 4 actions): the same checkpoint predicts the first
    4 steps of each chunk exactly, a model with other weights does not."""
    import torch

    from vla_policy_node.model.vla_policy import VLAPolicy

    cameras = tuple(dataclasses.replace(c, max_age=0.5) for c in sim_arm.cameras)
    emb = dataclasses.replace(sim_arm, cameras=cameras)  # cameras at 2.5 Hz here
    recorded = StampSeeded(VLAPolicy.from_checkpoint(tiny_checkpoint, emb, seed=0, num_steps=2))
    bag = demo_bag(tmp_path / "vla", emb, recorded, camera_every=20, episodes=1, episode_s=2.8, gap_s=0.2,
                   image_size=None)
    other = VLAPolicy.from_checkpoint(tiny_checkpoint, emb, seed=0, num_steps=2)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for param in other.model.head.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    # no RTC guidance: plain chunks. The synthetic arm follows the random model's commands exactly, teleporting
    # (8 rad on a 3 rad joint, 7 rad in 20 ms): no physical arm, so the sensor plausibility checks are off here.
    unphysical = PlausibilityConfig(position_tolerance=math.inf, gripper_tolerance=math.inf, jump_slack=math.inf)
    control = ControlConfig(executor=ExecutorConfig(strategy="ensemble"), plausibility=unphysical)
    same = _replay(emb, recorded, bag, latency=0.02, control=control)
    different = _replay(emb, StampSeeded(other), bag, latency=0.02, control=control)
    same_first, other_first = same["chunk_error"]["mae_per_step"][:4], different["chunk_error"]["mae_per_step"][:4]
    assert same["counts"]["inferences"] >= 7
    assert max(same_first) < 1e-5, same_first
    assert min(other_first) > 1e-2, other_first


def test_report_files(tmp_path, sim_arm, mcap_bag):
    result = OpenLoopReplay(sim_arm, ReachPolicy(sim_arm), ReplayConfig()).run(mcap_bag)
    paths = write_report(result, tmp_path / "report", {"policy": "ReachPolicy"})
    assert sorted(paths) == sorted(REPORT_FILES) and not (tmp_path / "report" / ".partial").exists()
    data = json.loads(paths["report.json"].read_text())
    assert data["complete"] is True and data["policy"] == "ReachPolicy"
    assert len(data["chunk_error"]["mae_per_step_per_dim"]) == data["horizon"] == 16
    assert data["chunk_error"]["names"] == [*sim_arm.joint_names, "gripper"]
    text = paths["report.md"].read_text()
    assert "| joint1 |" in text and "![error vs horizon step](horizon_error.png)" in text
    for png in ("joints.png", "horizon_error.png"):
        assert paths[png].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[png].stat().st_size > 10_000


def test_compressed_images_sqlite3_and_joint_state_target(tmp_path, sim_arm):
    bag = demo_bag(tmp_path / "jpeg", sim_arm, compressed=True, storage="sqlite3")
    summary = _replay(sim_arm, ReachPolicy(sim_arm), bag)
    assert summary["cameras"]["scene"]["compressed"] is True
    assert summary["chunk_error"]["mae"] < 1e-5  # the scripted policy ignores pixels; decoding must still work
    states = _replay(sim_arm, ReachPolicy(sim_arm), bag, target="joint_states")
    assert states["target"] == "joint_states" and states["chunk_error"]["mae"] < 1e-3


def test_image_transport_compressed_topic_is_found(tmp_path, sim_arm):
    """A robot config naming the raw topic replays a bag that only has image_transport's `/compressed`."""
    renamed = tuple(dataclasses.replace(c, topic=c.topic + "/compressed") for c in sim_arm.cameras)
    recorded = dataclasses.replace(sim_arm, cameras=renamed)
    bag = demo_bag(tmp_path / "it", recorded, compressed=True)
    summary = _replay(sim_arm, ReachPolicy(sim_arm), bag)
    assert summary["cameras"]["wrist"] == {"topic": "/wrist_camera/image_raw/compressed", "compressed": True}


def test_humble_layout_bag(tmp_path, sim_arm, sqlite_bag):
    bag = humble_layout(sqlite_bag, tmp_path / "humble")
    summary = _replay(sim_arm, ReachPolicy(sim_arm), bag)
    assert summary["chunk_error"]["mae"] < 1e-5 and len(summary["episodes"]) == 2


def test_bag_without_marks_is_one_episode(tmp_path, sim_arm):
    bag = demo_bag(tmp_path / "nomarks", sim_arm, marks=False, episodes=1)
    summary = _replay(sim_arm, ReachPolicy(sim_arm), bag)
    (episode,) = summary["episodes"]
    assert episode["implicit"] and summary["counts"]["chunks_outside_episodes"] == 0


@pytest.mark.parametrize(("topic", "message"), [
    ("/wrist_camera/image_raw", "camera 'wrist': no sensor_msgs/Image or CompressedImage on /wrist_camera/image_raw"),
    ("/joint_states", "joint states: /joint_states is missing"),
])
def test_missing_required_topic_is_named(tmp_path, sim_arm, sqlite_bag, topic, message):
    bag = drop_topic(sqlite_bag, tmp_path / "missing", topic)
    with pytest.raises(ReplayError, match=message):
        _replay(sim_arm, ReachPolicy(sim_arm), bag)


def test_commands_target_without_commands_is_refused(tmp_path, sim_arm, sqlite_bag):
    bag = drop_topic(sqlite_bag, tmp_path / "nocmd", "/arm_controller/joint_trajectory")
    with pytest.raises(ReplayError, match="target 'commands' needs trajectory_msgs/msg/JointTrajectory"):
        _replay(sim_arm, ReachPolicy(sim_arm), bag, target="commands")
    assert _replay(sim_arm, ReachPolicy(sim_arm), bag)["target"] == "joint_states"  # auto falls back


def test_truncated_and_corrupt_bags_are_refused(tmp_path, sim_arm, sqlite_bag, mcap_bag):
    import sqlite3

    truncated = shutil.copytree(sqlite_bag, tmp_path / "truncated")  # rows lost, metadata intact
    with sqlite3.connect(next(truncated.glob("*.db3"))) as conn:
        conn.execute("DELETE FROM messages WHERE id > (SELECT MAX(id) FROM messages) / 2")
    with pytest.raises(ReplayError, match="ended before all messages its metadata lists were read"):
        _replay(sim_arm, ReachPolicy(sim_arm), truncated)
    cut = shutil.copytree(mcap_bag, tmp_path / "cut")  # a recorder that died mid-file
    data_file = next(cut.glob("*.mcap"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size * 6 // 10])
    with pytest.raises(ReplayError, match=f"{cut}: unreadable bag: cannot open bag"):
        _replay(sim_arm, ReachPolicy(sim_arm), cut)
    checked = recompress_mcap(mcap_bag, tmp_path / "zstd")  # zstd chunks with CRCs replay as well
    assert _replay(sim_arm, ReachPolicy(sim_arm), checked)["chunk_error"]["mae"] < 1e-5
    data_file = next(checked.glob("*.mcap"))
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 64] = b"\xff" * 64
    data_file.write_bytes(bytes(raw))
    with pytest.raises(ReplayError, match=f"{checked}: unreadable bag: .*corrupt bag data.*checksum mismatch"):
        _replay(sim_arm, ReachPolicy(sim_arm), checked)


def test_observations_that_never_sync_are_explained(tmp_path, sim_arm, mcap_bag):
    renamed = dataclasses.replace(sim_arm, joints=tuple(dataclasses.replace(j, name=j.name + "_x")
                                                        for j in sim_arm.joints))
    with pytest.raises(ReplayError, match=r"no observation reached the policy.*joint_states: \d+ received, none "
                                          r"usable \(joint state lacks"):
        _replay(renamed, ReachPolicy(renamed), mcap_bag)


def test_cli_writes_a_report_or_an_error_and_no_report(tmp_path, sim_arm, tiny_checkpoint, one_torch_thread,
                                                       capsys):
    bag = demo_bag(tmp_path / "short", sim_arm, episodes=1, episode_s=1.2, gap_s=0.2, storage="sqlite3")
    out = tmp_path / "report"
    code = replay_cli.main([str(bag), "--robot", "sim_arm", "--checkpoint", str(tiny_checkpoint),
                            "-o", str(out), "--latency", "0.02", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == set(REPORT_FILES)
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["latency_ms"]["p50"] > 0 and report["counts"]["inferences"] >= 10
    assert np.isfinite(report["chunk_error"]["mae"])
    broken = drop_topic(bag, tmp_path / "broken", "/scene_camera/image_raw")
    code = replay_cli.main([str(broken), "--robot", "sim_arm", "--checkpoint", str(tiny_checkpoint),
                            "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "camera 'scene'" in err and str(broken) in err
    assert list(out.iterdir()) == []  # the earlier report is gone: nothing looks like this run's result


def test_without_instruction_topic_each_episode_takes_its_marks(tmp_path, sim_arm, mcap_bag):
    """The recorder's start marks carry the instruction: without /vla/instruction the replay uses them (and says
    so), so the known policy still replays with ~zero error; with no marks either it is refused."""
    bag = demo_bag(tmp_path / "no_instruction", sim_arm, faults=RecordingFaults(no_instruction_topic=True))
    summary = _replay(sim_arm, ReachPolicy(sim_arm), bag, latency=0.1)
    assert summary["instruction_source"] == "episode start marks"
    assert any("no /vla/instruction" in w for w in summary["warnings"])
    assert max(summary["chunk_error"]["mae_per_step"]) < 1e-5
    with_topic = _replay(sim_arm, ReachPolicy(sim_arm), mcap_bag, latency=0.1)
    assert with_topic["instruction_source"] == "topic /vla/instruction" and with_topic["warnings"] == []
    unmarked = demo_bag(tmp_path / "nothing", sim_arm, marks=False, faults=RecordingFaults(no_instruction_topic=True))
    with pytest.raises(ReplayError, match=r"no instruction: .* pass --instruction"):
        _replay(sim_arm, ReachPolicy(sim_arm), unmarked)
    given = _replay(sim_arm, ReachPolicy(sim_arm), unmarked, instruction="reach the red block", latency=0.1)
    assert given["instruction_source"] == "the --instruction given" and given["warnings"]


def test_cli_latency_is_fixed_by_default_and_named_at_the_top(tmp_path, sim_arm, tiny_checkpoint, one_torch_thread):
    bag = demo_bag(tmp_path / "short", sim_arm, episodes=1, episode_s=1.2, gap_s=0.2)
    reports = []
    for name in ("a", "b"):
        args = [str(bag), "--robot", "sim_arm", "--checkpoint", str(tiny_checkpoint), "-o", str(tmp_path / name),
                "--no-progress"]
        assert replay_cli.main(args) == 0
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    a, b = reports
    assert a["latency_model"] == "fixed 0.100 s (the robot's inference period, 1/10 Hz)"
    assert a["counts"] == b["counts"] and a["chunk_error"]["mae"] == b["chunk_error"]["mae"]  # not load-dependent
    top = (tmp_path / "a" / "report.md").read_text().splitlines()[2]
    assert top.startswith("**Latency model: fixed 0.100 s") and f"{a['counts']['inferences']} chunks" in top
    benchmarked = tmp_path / "benchmarked"
    shutil.copytree(tiny_checkpoint, benchmarked)
    (benchmarked / "benchmark.json").write_text(json.dumps({"latency_ms": {"p50": 40.0}}))
    assert replay_cli.main([str(bag), "--robot", "sim_arm", "--checkpoint", str(benchmarked), "-o",
                            str(tmp_path / "c"), "--no-progress"]) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["latency_model"] == "fixed 0.040 s (the checkpoint's benchmark.json p50)"
    assert replay_cli.main([str(bag), "--robot", "sim_arm", "--checkpoint", str(tiny_checkpoint), "-o",
                            str(tmp_path / "d"), "--no-progress", "--latency", "measured"]) == 0
    measured = json.loads((tmp_path / "d" / "report.json").read_text())["latency_model"]
    assert measured.startswith("measured (wall time")


def test_cli_strategy_is_the_checkpoints_recommendation_unless_given(tmp_path, sim_arm, capsys):
    """As the policy node: `--strategy auto` (the default) replays what deployment.json recommends."""
    write_deployment(tmp_path, Deployment(strategy="ensemble"))
    base = [str(tmp_path / "bag"), "--robot", "sim_arm", "--checkpoint", str(tmp_path)]
    for extra, want in (([], "ensemble"), (["--strategy", "rtc"], "rtc")):
        config = replay_cli.replay_config(replay_cli.parse_args([*base, *extra]), sim_arm)
        assert config.control.executor.strategy == want
    (tmp_path / "deployment.json").write_text('{"strategy": "fastest"}')
    assert replay_cli.main([*base, "--no-progress"]) == 2  # one line naming the file, before any replay
    err = capsys.readouterr().err
    assert "deployment.json: strategy must be one of" in err and len(err.strip().splitlines()) == 1
