"""Checkpoints: save -> load is exact, every broken file is named, hub ids resolve through the same path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test.model.helpers import limits_normalization, observation
from vla_policy_node.model.backbone import LoraSpec
from vla_policy_node.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec import Embodiment


@pytest.fixture(scope="module")
def saved(tmp_path_factory, sim_arm: Embodiment) -> tuple[Path, np.ndarray]:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    norm = limits_normalization(sim_arm)
    directory = save_checkpoint(model, norm, tmp_path_factory.mktemp("ckpt") / "tiny")
    expected = VLAPolicy(model, norm, sim_arm, seed=7).infer(observation(sim_arm)).actions
    return directory, expected


def test_directory_layout_has_no_pickle(saved) -> None:
    directory, _ = saved
    names = {p.name for p in directory.iterdir()}
    assert {"vla_config.json", "model.safetensors", "normalization.json", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl", ".pth")) for n in names)
    config = json.loads((directory / "vla_config.json").read_text())
    assert config["backbone"]["source"] is None and config["backbone"]["select_layer"] == 2
    assert config["backbone"]["model_config"]["text_config"]["num_hidden_layers"] == 2


def test_save_then_load_gives_identical_outputs(saved, sim_arm: Embodiment) -> None:
    directory, expected = saved
    policy = VLAPolicy.from_checkpoint(directory, sim_arm, seed=7)
    np.testing.assert_array_equal(policy.infer(observation(sim_arm)).actions, expected)
    assert not any(p.requires_grad for p in policy.model.backbone.parameters())


def test_lora_checkpoint_round_trip(tmp_path: Path, sim_arm: Embodiment) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm], backbone_overrides={"lora": LoraSpec(rank=4, alpha=8, dropout=0.0)})
    with torch.no_grad():  # LoRA B starts at zero; make the adapters matter
        for name, p in model.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    norm = limits_normalization(sim_arm)
    before = VLAPolicy(model, norm, sim_arm, seed=1).infer(observation(sim_arm)).actions
    save_checkpoint(model, norm, tmp_path / "lora")
    after = VLAPolicy.from_checkpoint(tmp_path / "lora", sim_arm, seed=1).infer(observation(sim_arm)).actions
    np.testing.assert_allclose(after, before, atol=1e-6)


def _copy(saved, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(saved[0], dst)
    return dst


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "vla_config.json").unlink(), "missing vla_config.json"),
        (lambda d: (d / "model.safetensors").unlink(), "missing model.safetensors"),
        (lambda d: (d / "normalization.json").unlink(), "missing normalization.json"),
        (lambda d: (d / "vla_config.json").write_text("{not json"), "vla_config.json: corrupt JSON"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
         "corrupt safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "corrupt safetensors"),
        (lambda d: _edit_json(d / "vla_config.json", lambda c: c["head"].update(dim=48)),
         "tensor 'head.*' has shape"),
        (lambda d: _edit_json(d / "vla_config.json", lambda c: c.update(format="other/9")), "format is 'other/9'"),
        (lambda d: _edit_json(d / "normalization.json", lambda c: c.pop("sim_arm")), r"no stats for .*sim_arm"),
        (lambda d: (d / "tokenizer.json").write_text("garbage"), "could not rebuild the backbone or its processor"),
    ],
)
def test_broken_checkpoints_name_the_problem(saved, tmp_path: Path, breakage, message: str) -> None:
    directory = _copy(saved, tmp_path)
    breakage(directory)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(directory)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "nowhere")


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.slow
def test_hub_id_loads_through_the_same_path(saved, tmp_path: Path, sim_arm: Embodiment) -> None:
    """A hub id resolves to a snapshot in the local hub cache (offline here) and loads like a directory."""
    directory, expected = saved
    repo = tmp_path / "hub" / "models--acme--tiny-vla"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(directory, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = (
        "import numpy as np, sys\n"
        "from test.model.helpers import observation\n"
        "from vla_policy_node.model.vla_policy import VLAPolicy\n"
        "from vla_policy_node.spec import load_embodiment\n"
        "emb = load_embodiment('config/robots/sim_arm.yaml')\n"
        "a = VLAPolicy.from_checkpoint('acme/tiny-vla', emb, seed=7).infer(observation(emb)).actions\n"
        "np.save(sys.argv[1], a)\n"
    )
    out = tmp_path / "hub_actions.npy"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": "."}
    repo_root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script, str(out)], cwd=repo_root, env=env, check=True, timeout=120)
    np.testing.assert_array_equal(np.load(out), expected)
    env_missing = {**env, "HF_HUB_CACHE": str(tmp_path / "empty")}
    proc = subprocess.run([sys.executable, "-c", script, str(out)], cwd=repo_root, env=env_missing,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "could not resolve model-hub id 'acme/tiny-vla'" in proc.stderr
