"""The policy node's `strategy` parameter: `auto` (the default) runs what the checkpoint's deployment.json
recommends, an explicit strategy wins, setting `auto` live goes back to the recommendation, and a deployment.json
that cannot be used fails the configure transition naming the file (never a silent other strategy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test.nodes.fakes import ServiceTransport
from vla_policy_node.nodes import policy_node
from vla_policy_node.spec.deployment import DEPLOYMENT_FILE, Deployment, write_deployment


@pytest.fixture(scope="module")
def recommending_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    checkpoint = tmp_path_factory.mktemp("deploy") / "tiny_vla"
    shutil.copytree(tiny_checkpoint, checkpoint)
    write_deployment(checkpoint, Deployment(strategy="ensemble", why="test"))
    return checkpoint


def configure(repo_root: Path, checkpoint: Path, *extra: str) -> tuple[policy_node.PolicyNode, str]:
    args = policy_node.parse_args(["--robot-config", str(repo_root / "config/robots/sim_arm.yaml"),
                                   "--checkpoint", str(checkpoint), "--inference", "thread",
                                   "--torch-threads", "1", *extra])
    node = policy_node.PolicyNode(args)
    transport = ServiceTransport(clock=100.0)
    transport.node_name = policy_node.NODE_NAME
    node.attach(transport)
    return node, node.configure()


def running_strategy(node: policy_node.PolicyNode) -> str:
    assert node.runtime is not None
    return node.runtime.loop.status(100.0).strategy


def test_auto_runs_the_checkpoints_recommendation_and_explicit_wins(repo_root, recommending_checkpoint,
                                                                    tiny_checkpoint):
    node, error = configure(repo_root, recommending_checkpoint)
    try:
        assert error == "" and node.settings["strategy"] == "auto"
        assert running_strategy(node) == "ensemble"
        assert node.on_parameter("strategy", "rtc") == ""
        assert running_strategy(node) == "rtc"
        assert node.on_parameter("strategy", "auto") == ""  # back to what the checkpoint recommends
        assert running_strategy(node) == "ensemble"
    finally:
        node.shutdown()
    node, error = configure(repo_root, recommending_checkpoint, "--strategy", "synchronous")
    try:
        assert error == "" and running_strategy(node) == "synchronous"
    finally:
        node.shutdown()
    node, error = configure(repo_root, tiny_checkpoint)  # no deployment.json: the executor's default
    try:
        assert error == "" and running_strategy(node) == "rtc"
    finally:
        node.shutdown()


def test_an_unusable_deployment_file_fails_configure_naming_it(repo_root, tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / "tiny_vla"
    shutil.copytree(tiny_checkpoint, checkpoint)
    (checkpoint / DEPLOYMENT_FILE).write_text('{"strategy": "fastest"}')
    node, error = configure(repo_root, checkpoint)
    try:
        assert node.runtime is None
        assert str(checkpoint / DEPLOYMENT_FILE) in error and "'fastest'" in error
    finally:
        node.shutdown()
