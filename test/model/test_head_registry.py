"""The head registry: every shipped head registers a config class and a builder, head configs round-trip through
the checkpoint format (old flow configs without a type included), and unknown heads are named. The production
path never imports the test-size model builders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vla_policy_node.model.action_head import ActionHead
from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.flow_head import FlowHeadConfig, FlowMatchingHead
from vla_policy_node.model.heads import build_head, head_config_from_dict, head_config_to_dict, registered_heads

SHIPPED = {"flow", "pred", "discrete_pred", "uniform", "vq", "rvq", "fast", "lang", "semlang"}


def test_every_shipped_head_is_registered_with_its_config_class() -> None:
    heads = registered_heads()
    assert set(heads) == SHIPPED
    assert heads["flow"].config_cls is FlowHeadConfig and heads["flow"].head_cls is FlowMatchingHead
    for name in SHIPPED - {"flow"}:
        assert heads[name].config_cls is ASAHeadConfig and heads[name].head_cls.name == name
        assert issubclass(heads[name].head_cls, ActionHead)


def test_head_configs_round_trip_and_build_their_head() -> None:
    flow = FlowHeadConfig(backbone_dim=16, dim=16, layers=1, heads=2, adapter_layers=1, max_state_dim=4,
                          max_action_dim=4, max_embodiments=1, num_future_tokens=2)
    data = head_config_to_dict(flow)
    assert data["type"] == "flow" and head_config_from_dict(data) == flow
    legacy = {k: v for k, v in data.items() if k != "type"}  # written before heads had a type
    assert head_config_from_dict(legacy) == flow
    assert isinstance(build_head(flow), FlowMatchingHead)
    pred = ASAHeadConfig(backbone_dim=16, adapter="pred", horizon=2, action_dim=3, hidden=8)
    data = head_config_to_dict(pred)
    assert data["type"] == "asa" and data["adapter"] == "pred" and head_config_from_dict(data) == pred
    assert type(build_head(pred)) is registered_heads()["pred"].head_cls


def test_unknown_heads_are_named() -> None:
    with pytest.raises(ValueError, match="unknown head type 'diffusion'"):
        head_config_from_dict({"type": "diffusion", "backbone_dim": 8})
    with pytest.raises(ValueError, match="unknown adapter 'bins'"):
        head_config_from_dict({"type": "asa", "backbone_dim": 8, "adapter": "bins"})


def test_the_serving_and_training_path_never_imports_the_tiny_builders() -> None:
    """model/tiny.py is for tests and demos: the policy, checkpoint loading and training must not load it."""
    script = ("import sys\n"
              "import vla_policy_node.model.vla_policy, vla_policy_node.train.trainer\n"
              "import vla_policy_node.model.checkpoint, vla_policy_node.model.asa.build\n"
              "import vla_policy_node.model.transforms.pipeline\n"
              "print(sorted(m for m in sys.modules if m.startswith('vla_policy_node.model.tiny')))\n")
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout
