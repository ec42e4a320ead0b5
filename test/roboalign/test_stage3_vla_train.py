"""RoboAlign stage 3 is a vla_train recipe: config/train/roboalign_stage3.yaml is the stage-3 example config, and
`roboalign_vla` (the old command) and `vla_train` train the same weights from an aligned MLLM, its backbone
frozen, into a checkpoint the policy serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from test.bagtools.helpers import demo_bag
from test.roboalign.test_chain import HORIZON, robot_samples
from test.roboalign.toy import single_thread
from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
from vla_policy_node.cli import roboalign, vla_train
from vla_policy_node.model.asa.tokenizers.fast import FastConfig, FastTokenizer
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.train.data import fit_normalization
from vla_policy_node.train.recipe import load_recipe
from vla_policy_node.train.roboalign.common import RunConfig, load_config_file
from vla_policy_node.train.roboalign.data import ActionSamples, Mix
from vla_policy_node.train.roboalign.sft import SFTConfig, run_sft
from vla_policy_node.train.roboalign.vla import VLAStageConfig, stage3_recipe

REPO = Path(__file__).resolve().parents[2]
STAGE3 = REPO / "src/vla_policy_node/vla_policy_node/train/roboalign/configs/vla.yaml"


def test_the_stage3_config_is_a_vla_train_recipe():
    recipe, progress = stage3_recipe(load_config_file(VLAStageConfig, STAGE3))
    assert progress and recipe == load_recipe(REPO / "config/train/roboalign_stage3.yaml")
    assert recipe.model.mode == "frozen" and recipe.model.head == "flow"


@pytest.fixture(scope="module")
def aligned_and_dataset(tmp_path_factory, sim_arm) -> tuple[Path, Path]:
    """An aligned MLLM (a few SFT steps on FAST-token actions) and a converted sim-arm dataset."""
    single_thread()
    root = tmp_path_factory.mktemp("stage3")
    samples = robot_samples(sim_arm)
    norm = fit_normalization(samples)
    fast = FastTokenizer(FastConfig(HORIZON, sim_arm.action_dim, scale=2.0, vocab_size=32))
    fast.fit(np.stack([norm[sim_arm.tag].action.normalize(s.actions) for s in samples]))
    run = RunConfig(output_dir=str(root / "sft"), steps=2, batch_size=2, lr=1e-3, warmup_steps=1, cpu=True,
                    progress=False)
    aligned, _ = run_sft(SFTConfig(run=run), Mix([ActionSamples(samples, fast, norm)]))
    bag = demo_bag(root / "bag", sim_arm, episodes=3, episode_s=1.5, gap_s=0.3)
    dataset = convert_bags([bag], sim_arm, root / "dataset", ConversionConfig(val_fraction=0.34)).output
    return Path(aligned), dataset


HEAD = {"horizon": HORIZON, "dim": 32, "layers": 2, "heads": 4, "adapter_layers": 1}
LOOP = {"steps": 4, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "save_every": 2, "val_batches": 1,
        "threads": 1}


def test_roboalign_vla_and_vla_train_train_the_same_frozen_backbone_policy(tmp_path, aligned_and_dataset, sim_arm):
    aligned, dataset = aligned_and_dataset
    robot = str(REPO / "config/robots/sim_arm.yaml")
    overrides = [f"robot={robot}", f"datasets=[{dataset}]", f"output_dir={tmp_path / 'vla_train'}",
                 f"model.backbone={aligned}", "model.select_layer=2", "model.dtype=float32",
                 f"model.horizon={HORIZON}", "model.head_dim=32",
                 "model.head_options={layers: 2, heads: 4, adapter_layers: 1}", "train.device=cpu",
                 "train.val_every=4", *[f"train.{k}={v}" for k, v in LOOP.items()], "--no-progress"]
    assert vla_train.main([str(REPO / "config/train/roboalign_stage3.yaml"), *overrides]) == 0
    config = {"aligned": str(aligned), "select_layer": 2, "embodiments": [robot], "dataset": str(dataset),
              "head": HEAD, "train": {"output_dir": str(tmp_path / "roboalign"), **LOOP, "progress": False}}
    (tmp_path / "vla.yaml").write_text(yaml.safe_dump(config))
    assert roboalign.vla_main(["--config", str(tmp_path / "vla.yaml")]) == 0
    ours, theirs = (load_file(tmp_path / d / "final/model.safetensors") for d in ("vla_train", "roboalign"))
    assert ours.keys() == theirs.keys()
    assert all(bool((ours[k] == theirs[k]).all()) for k in ours)  # one training path
    assert (tmp_path / "roboalign/metrics.jsonl").read_text().count("val_loss") == 1  # validated at the end
    policy = VLAPolicy.from_checkpoint(tmp_path / "roboalign/final", sim_arm, seed=0)
    # the served backbone is the aligned MLLM's, frozen; the head trained
    stored = load_file(str(aligned / "model.safetensors"))
    key = next(k for k in stored if k.endswith("layers.0.self_attn.q_proj.weight") and "visual" not in k)
    served = dict(policy.model.backbone.model.named_parameters())
    name = next(n for n in served if n.endswith("layers.0.self_attn.q_proj.weight") and "visual" not in n)
    torch.testing.assert_close(served[name].float(), stored[key].float())
    first = load_file(tmp_path / "roboalign/checkpoint-0000002/model.safetensors")
    head = [k for k in ours if k.startswith("head.")]
    assert head and any(not bool((first[k] == ours[k]).all()) for k in head)
