"""vla_train under a launcher: `torchrun --nproc_per_node 1` on CPU (gloo) trains through DDP, or FSDP when the
recipe says so, to the same weights as the plain process (one process: gradients averaged over one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from test.bagtools.helpers import demo_bag
from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
from vla_policy_node.cli import vla_train as cli

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # two torchrun launches (~15 s of imports each on 2 busy cores)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sim_arm) -> Path:
    root = tmp_path_factory.mktemp("vla_train_dist")
    bag = demo_bag(root / "bag", sim_arm, episodes=3, episode_s=1.5, gap_s=0.3)
    return convert_bags([bag], sim_arm, root / "dataset", ConversionConfig(val_fraction=0.34)).output


def _args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [str(REPO / "config/train/sim_arm.yaml"), f"datasets=[{dataset}]", f"output_dir={out}", "train.steps=4",
            "train.save_every=2", "train.val_every=4", "train.batch_size=4", "train.val_batches=1",
            "train.in_memory=false", "model.image_size=64", "camera_topics=", "train.threads=1", "--no-progress",
            *extra]


def _torchrun(args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                           "-m", "vla_policy_node.cli.vla_train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_torchrun_one_process_ddp_and_fsdp_train_what_one_plain_process_trains(tmp_path, dataset, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert cli.main(_args(dataset, tmp_path / "plain")) == 0
    finally:
        torch.set_num_threads(before)
    assert "process(es)" not in capsys.readouterr().out  # no launcher: no process group
    plain = load_file(tmp_path / "plain/final/model.safetensors")
    for strategy in ("ddp", "fsdp"):
        out = tmp_path / strategy
        printed = _torchrun(_args(dataset, out, f"train.distributed={strategy}"))
        assert f"{strategy} over 1 process(es)" in printed, printed
        assert "val loss" in printed and (out / "final/model.safetensors").is_file()
        launched = load_file(out / "final/model.safetensors")
        assert launched.keys() == plain.keys()
        for key in plain:
            torch.testing.assert_close(launched[key], plain[key], rtol=0, atol=0, msg=f"{strategy}: {key}")
