"""The real commands end to end: sim demonstrations -> bag-to-dataset -> FAST tokenizer CLI -> the three stage
CLIs with YAML configs -> a checkpoint the policy serves."""

import re

import numpy as np
import pytest
import yaml

from test.model.helpers import observation
from test.roboalign.toy import single_thread
from test.system.processes import REPO
from vla_policy_node.cli import train_action_tokenizer
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.train.roboalign import grpo, sft, vla

ROBOT = REPO / "config" / "sim" / "sim_arm_target_state.yaml"
H = 4


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return ["--config", str(path)]


@pytest.mark.slow
def test_stage_commands_chain_from_a_recorded_dataset(tmp_path, capsys, sim_demos):
    single_thread()
    robot = load_embodiment(ROBOT)
    dataset = sim_demos.target_state_dataset  # recorded by this robot config (the session's shared demos)
    assert train_action_tokenizer.main([str(dataset), str(tmp_path / "fast"), "--kind", "fast", "--horizon", str(H),
                                        "--split", "all", "--vocab-size", "64", "--scale", "4"]) == 0
    source = {"kind": "lerobot", "path": str(dataset), "tokenizer": str(tmp_path / "fast"), "split": None}
    run = {"batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "cpu": True, "progress": False}
    sft.main(_yaml(tmp_path / "sft.yaml", {"run": {"output_dir": str(tmp_path / "sft"), "steps": 3, **run},
                                           "data": [source]}))
    grpo.main(_yaml(tmp_path / "grpo.yaml", {
        "run": {"output_dir": str(tmp_path / "grpo"), "steps": 2, **run},
        "mllm": {"source": str(tmp_path / "sft" / "final")}, "data": [source], "group_size": 3,
        "max_new_tokens": 8}))
    capsys.readouterr()
    vla.main(_yaml(tmp_path / "vla.yaml", {
        "aligned": str(tmp_path / "grpo" / "final"), "select_layer": 2, "embodiments": [str(ROBOT)],
        "dataset": str(dataset), "split": None,
        "head": {"horizon": H, "dim": 32, "layers": 2, "heads": 4, "adapter_layers": 1},
        "train": {"output_dir": str(tmp_path / "vla"), "steps": 3, "batch_size": 2, "progress": False}}))
    ckpt = re.search(r"policy checkpoint: (\S+)", capsys.readouterr().out).group(1)
    chunk = VLAPolicy.from_checkpoint(ckpt, robot, seed=0).infer(observation(robot, "red")).actions
    assert chunk.shape == (H, robot.action_dim) and np.isfinite(chunk).all()
