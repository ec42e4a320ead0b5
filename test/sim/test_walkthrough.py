"""The README walk-through, end to end on the simulated arm with the real command lines: teleoperated demos
recorded (the IK expert drives the arm through its controller topic, the recorder writes the bag), converted
with video, trained with vla_train from a config, replayed open loop, and run in the policy node (closed loop
with the command mux). The trained policy's replay error must be well below the untrained one's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vla_policy_node.bagtools import dataset as convert_cli
from vla_policy_node.bagtools import replay_cli
from vla_policy_node.cli import vla_train as train_cli
from vla_policy_node.experiments.sim_arm import demos as record_cli
from vla_policy_node.experiments.sim_arm import evaluate as node_cli

REPO = Path(__file__).resolve().parents[2]
STEPS = 300


@pytest.mark.slow
def test_record_convert_train_replay_and_run_the_node(tmp_path, capsys):
    start = time.perf_counter()
    demos = tmp_path / "demos"
    assert record_cli.main(["--robot-config", str(REPO / "config/robots/sim_arm.yaml"), "-o", str(demos),
                            "--episodes", "6"]) == 0
    bag = demos / "bag"
    assert convert_cli.main([str(bag), "--robot", "sim_arm", "-o", str(tmp_path / "dataset"), "--no-progress",
                             "--val-fraction", "0.2"]) == 0
    assert list((tmp_path / "dataset" / "videos").rglob("*.mp4"))  # converted with video
    recipe = [str(REPO / "config/train/sim_arm.yaml"), f"datasets=[{tmp_path / 'dataset'}]", "--no-progress",
              "train.batch_size=8", "train.val_batches=1", f"train.val_every={STEPS}", f"train.save_every={STEPS}",
              "model.image_size=64"]
    assert train_cli.main([*recipe, f"output_dir={tmp_path / 'run'}", f"train.steps={STEPS}"]) == 0
    assert train_cli.main([*recipe, f"output_dir={tmp_path / 'untrained'}", "train.steps=1", "train.lr=0"]) == 0
    errors = {}
    for name in ("run", "untrained"):
        out = tmp_path / f"report_{name}"
        assert replay_cli.main([str(bag), "--robot", "sim_arm", "--checkpoint", str(tmp_path / name / "final"),
                                "-o", str(out), "--no-progress"]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["latency_model"].startswith("fixed")
        errors[name] = report["chunk_error"]["mae"]
    assert errors["run"] < 0.5 * errors["untrained"], errors
    capsys.readouterr()
    assert node_cli.main(["--checkpoint", str(tmp_path / "run" / "final"), "--episodes", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 1 and summary["inferences"] > 0  # the node inferred and the mux ran the arm
    print(f"walk-through: {time.perf_counter() - start:.0f} s, replay MAE trained {errors['run']:.4f} vs untrained "
          f"{errors['untrained']:.4f}")
