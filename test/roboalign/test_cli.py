"""One command per stage with a config file; the shipped example configs parse into the typed configs."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

import vla_policy_node.train.roboalign as pkg
from test.roboalign.toy import single_thread
from vla_policy_node.train.roboalign import sft
from vla_policy_node.train.roboalign.common import load_config_file
from vla_policy_node.train.roboalign.grpo import GRPOConfig
from vla_policy_node.train.roboalign.mllm import LoraConfig
from vla_policy_node.train.roboalign.sft import SFTConfig
from vla_policy_node.train.roboalign.vla import VLAStageConfig

CONFIGS = Path(pkg.__file__).parent / "configs"


def test_example_configs_parse():
    s = load_config_file(SFTConfig, CONFIGS / "sft.yaml")
    assert s.run.mixed_precision == "bf16" and s.mllm.gradient_checkpointing and len(s.data) == 3
    assert s.data[2].kind == "lerobot" and s.data[2].weight == 2.0
    g = load_config_file(GRPOConfig, CONFIGS / "grpo.yaml")
    assert g.group_size == 5 and g.reward == "roboalign" and g.mllm.source.endswith("sft/final")
    v = load_config_file(VLAStageConfig, CONFIGS / "vla.yaml")
    assert v.select_layer == 18 and v.train["device"] == "cuda"


def test_sft_cli_with_lora_from_a_json_config(tmp_path, capsys):
    single_thread()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "vqa.jsonl").write_text(json.dumps(
        {"images": ["a.png"], "question": "what color", "answer": "white", "reasoning": "bright"}) + "\n")
    config = {"run": {"output_dir": str(tmp_path / "out"), "steps": 12, "batch_size": 2, "lr": 3e-3,
                      "warmup_steps": 1, "log_every": 4, "cpu": True, "progress": False},
              "mllm": {"lora": {"r": 4, "alpha": 8}},
              "data": [{"kind": "vqa", "path": str(tmp_path / "vqa.jsonl")}]}
    path = tmp_path / "sft.json"
    path.write_text(json.dumps(config))
    assert isinstance(load_config_file(SFTConfig, path).mllm.lora, LoraConfig)
    sft.main(["--config", str(path)])
    assert "aligned MLLM" in capsys.readouterr().out
    final = tmp_path / "out" / "final"
    weights = json.loads((final / "config.json").read_text())
    assert weights["model_type"] == "qwen2_5_vl"
    from safetensors import safe_open

    with safe_open(str(final / "model.safetensors"), "pt") as f:
        assert not any("lora_" in k for k in f.keys())  # noqa: SIM118 - safe_open is no dict; merged: a plain model for the next stage
    losses = [json.loads(line)["loss"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
