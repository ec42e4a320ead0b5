"""vla_train: one YAML recipe (dataclasses, command-line overrides), datasets mixed by weight, validation (loss and
open-loop action error per joint), checkpoints, exact resume, plots; the example configs parse."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from test.bagtools.helpers import demo_bag
from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
from vla_policy_node.cli import vla_train as cli
from vla_policy_node.spec.deployment import Deployment, read_deployment
from vla_policy_node.train.mixture import DatasetSpec, Mixture
from vla_policy_node.train.recipe import DeployRecipe, load_recipe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sim_arm) -> Path:
    root = tmp_path_factory.mktemp("vla_train")
    bag = demo_bag(root / "bag", sim_arm, episodes=3, episode_s=1.5, gap_s=0.3)
    return convert_bags([bag], sim_arm, root / "dataset", ConversionConfig(val_fraction=0.34)).output


def test_example_configs_parse_and_overrides_apply(capsys):
    robots = set()
    for path in sorted((REPO / "config" / "train").glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe.datasets and recipe.model.head == "flow", path
        assert cli.main([str(path), "--dry-run"]) == 0
        robots.add(Path(recipe.robot).stem)
    assert {"franka_fr3", "ur5e", "so101", "sim_arm"} <= robots  # the example robots have configs
    capsys.readouterr()
    recipe = load_recipe(REPO / "config/train/franka_fr3.yaml", ["train.steps=7", "model.mode=full",
                                                                 "datasets=[a, {path: b, weight: 3}]"])
    assert recipe.train.steps == 7 and recipe.model.mode == "full"
    assert [(d.path, d.weight) for d in recipe.datasets] == [("a", 1.0), ("b", 3.0)]
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\]"):
        load_recipe(None, ["robot=sim_arm", "output_dir=x", "datasets=[d]", "train.stepz=3"])
    with pytest.raises(ValueError, match="cannot stay frozen"):
        load_recipe(None, ["robot=sim_arm", "output_dir=x", "datasets=[d]", "model.backbone=tiny:qwen3_vl"])
    assert cli.main(["robot=sim_arm", "output_dir=x", "datasets=[d]", "model.mode=sideways"]) == 2
    assert "model.mode must be frozen, lora or full" in capsys.readouterr().err
    assert cli.main(["robot=sim_arm", "output_dir=x", "datasets=[d]", "deploy.strategy=fastest"]) == 2
    assert "deploy.strategy must be one of synchronous, ensemble, rtc, got 'fastest'" in capsys.readouterr().err


def test_mixture_draws_each_dataset_by_its_weight(dataset, sim_arm):
    mix = Mixture([DatasetSpec(str(dataset), 2.0), DatasetSpec(str(dataset), 1.0)], split=None, horizon=4,
                  tag=sim_arm.tag)
    n = len(mix) // 2
    mix.weights /= mix.weights.sum()
    assert mix.weights[:n].sum() == pytest.approx(2 / 3) and mix.weights[n:].sum() == pytest.approx(1 / 3)
    np.testing.assert_array_equal(mix[n + 3].state, mix[3].state)
    with pytest.raises(FileNotFoundError, match="dataset nowhere not found"):
        Mixture([DatasetSpec("nowhere")], split=None, horizon=4, tag=sim_arm.tag)


def _args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [str(REPO / "config/train/sim_arm.yaml"), f"datasets=[{dataset}]", f"output_dir={out}", "train.steps=12",
            "train.save_every=6", "train.val_every=6", "train.batch_size=4", "train.val_batches=1",
            "train.in_memory=false", "model.image_size=64", "camera_topics=", "--no-progress", *extra]


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_trains_validates_checkpoints_and_resumes_exactly(tmp_path, dataset, sim_arm, one_torch_thread):
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.train.recipe import load_recipe as recipe_of
    from vla_policy_node.train.vla_train import run

    assert cli.main(_args(dataset, tmp_path / "a")) == 0
    a = tmp_path / "a"
    assert {"final", "latest", "loss.png", "metrics.jsonl", "recipe.json"} <= {p.name for p in a.iterdir()}
    rows = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in val] == [6, 12]
    assert set(val[-1]["val_action_mae_per_joint"]) == set(sim_arm.action_names)
    assert all(np.isfinite(r["val_action_mae"]) for r in val)
    VLAPolicy.from_checkpoint(a / "final", sim_arm)  # what the node and replay load
    assert read_deployment(a / "final") == Deployment()  # no deploy section: no recommendation
    # stopped after 6 steps and run again: the same weights as the run straight through
    recipe = recipe_of(_args(dataset, tmp_path / "b")[0], [x for x in _args(dataset, tmp_path / "b")[1:]
                                                           if "=" in x])
    recipe = dataclasses.replace(recipe, deploy=DeployRecipe(strategy="ensemble"))
    first = run(recipe, sim_arm, progress=False, until=6)
    assert first["steps"] == 6 and first["final"] is None
    second = run(recipe, sim_arm, progress=False)
    assert second["steps"] == 12
    from safetensors.torch import load_file

    straight, resumed = load_file(a / "final/model.safetensors"), load_file(tmp_path / "b/final/model.safetensors")
    assert straight.keys() == resumed.keys()  # (the file header's metadata order varies between processes)
    assert all(bool((straight[k] == resumed[k]).all()) for k in straight)
    assert read_deployment(tmp_path / "b/final").strategy == "ensemble"  # what the node's strategy auto runs


def test_the_sim_recipe_is_the_sim_reach_config(sim_arm):
    from vla_policy_node.experiments.sim_arm.train import SimTrainConfig, recipe

    shipped = load_recipe(REPO / "config/train/sim_reach.yaml", ["datasets=[demos/dataset]", "output_dir=runs/x"])
    assert recipe(sim_arm, "demos/dataset", "runs/x", SimTrainConfig(threads=1)) == shipped  # README: --threads 1


def test_the_pick_place_recipe_is_the_sim_pick_place_config(sim_arm):
    from vla_policy_node.experiments.sim_arm.train import RECIPES, recipe

    shipped = load_recipe(REPO / "config/train/sim_pick_place.yaml", ["datasets=[demos/dataset]",
                                                                      "output_dir=runs/x"])
    assert recipe(sim_arm, "demos/dataset", "runs/x", RECIPES["pick_place"]) == shipped


def test_the_recipe_serves_every_continuous_adapter_of_the_head_registry():
    from vla_policy_node.model.asa.config import CONTINUOUS
    from vla_policy_node.model.heads import registered_heads
    from vla_policy_node.train.recipe import ASA_HEADS, TOKEN_HEADS

    assert set(ASA_HEADS) == set(CONTINUOUS) and set(CONTINUOUS) <= set(registered_heads())
    base = ["robot=sim_arm", "output_dir=x", "datasets=[d]", "model.mode=full"]
    for adapter in ASA_HEADS:
        extra = ["model.tokenizer=tok"] if adapter in TOKEN_HEADS else []
        assert load_recipe(None, [*base, f"model.head=asa:{adapter}", *extra]).model.head == f"asa:{adapter}"
    with pytest.raises(ValueError, match=r"needs model\.tokenizer"):
        load_recipe(None, [*base, "model.head=asa:rvq"])
    with pytest.raises(ValueError, match="actions are continuous"):
        load_recipe(None, [*base, "model.head=asa:lang"])


@pytest.mark.parametrize("adapter", ["pred", "uniform"])
def test_trains_an_asa_head_policy_and_loads_it_back(tmp_path, dataset, sim_arm, one_torch_thread, adapter):
    """asa:pred regresses chunks; asa:uniform decodes tokens of a tokenizer fitted by vla_train_action_tokenizer,
    whose action normalization the checkpoint must carry (the bins were cut in it)."""
    from safetensors.torch import load_file

    from vla_policy_node.cli import train_action_tokenizer
    from vla_policy_node.model.checkpoint import load_checkpoint
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.spec.types import Observation
    from vla_policy_node.train.lerobot_dataset import LeRobotSamples

    extra = [f"model.head=asa:{adapter}", "model.horizon=4", "model.head_dim=32"]
    if adapter == "uniform":
        assert train_action_tokenizer.main([str(dataset), str(tmp_path / "tok"), "--kind", "uniform", "--horizon",
                                            "4", "--bins", "32"]) == 0
        # widen the tokenizer's action range: its statistics, not the dataset's, must reach the checkpoint
        path = tmp_path / "tok/normalization.json"
        stored = json.loads(path.read_text())
        for entry in stored.values():
            entry["action"]["q99"] = [v + 0.5 for v in entry["action"]["q99"]]
        path.write_text(json.dumps(stored))
        extra.append(f"model.tokenizer={tmp_path / 'tok'}")
    out = tmp_path / "run"
    assert cli.main(_args(dataset, out, *extra, "train.steps=4", "train.save_every=2", "train.val_every=2")) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    assert losses and all(np.isfinite(losses)) and [r["step"] for r in val] == [2, 4]
    assert set(val[-1]["val_action_mae_per_joint"]) == set(sim_arm.action_names)
    model, normalization = load_checkpoint(out / "final")
    assert model.config.head.type == "asa" and model.config.head.adapter == adapter
    assert model.config.head.horizon == 4
    stored = load_file(out / "final/model.safetensors")
    loaded = model.state_dict()
    assert all(bool((loaded[k] == v).all()) for k, v in stored.items())  # the trained weights, not a fresh init
    if adapter == "uniform":
        (fitted,) = json.loads((tmp_path / "tok/normalization.json").read_text()).values()
        action = normalization[sim_arm.tag].action
        assert action.mode == fitted["action"]["mode"]
        for key, values in action.stats.to_dict().items():
            np.testing.assert_allclose(values, fitted["action"][key], rtol=1e-6, atol=1e-9)
    policy = VLAPolicy.from_checkpoint(out / "final", sim_arm)
    sample = LeRobotSamples(dataset, split="val", horizon=4, tag=sim_arm.tag)[0]
    chunk = policy.infer(Observation(0.0, sample.images, sample.state, sample.instruction))
    assert chunk.actions.shape == (4, sim_arm.action_dim) and np.isfinite(chunk.actions).all()


def _shifted_copy(src: Path, dst: Path, scale: float, offset: float) -> Path:
    """A copy of a dataset whose states and actions are `x * scale + offset` (another robot range)."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(src, dst)
    for path in (dst / "data").glob("*/*.parquet"):
        table = pq.read_table(path)
        for key in ("observation.state", "action"):
            column = table.column(key).combine_chunks()
            values = column.flatten().to_numpy(zero_copy_only=False) * scale + offset
            shifted = pa.FixedSizeListArray.from_arrays(pa.array(values.astype(np.float32)), column.type.list_size)
            table = table.set_column(table.column_names.index(key), key, shifted.cast(column.type))
        pq.write_table(table, path)
    return dst


def test_a_mixture_normalizes_with_the_statistics_of_what_it_draws(tmp_path, dataset, sim_arm):
    """Dataset B (ranges x3 + 5) at weight 1 next to A at weight 2: the statistics are those of A, A, B pooled
    (equal sizes), not A's alone; a recipe of the two trains with them."""
    from vla_policy_node.spec.normalization import Stats
    from vla_policy_node.train.lerobot_dataset import LeRobotSamples

    other = _shifted_copy(dataset, tmp_path / "b", 3.0, 5.0)
    mix = Mixture([DatasetSpec(str(dataset), 2.0), DatasetSpec(str(other), 1.0)], split="train", horizon=4,
                  tag=sim_arm.tag)
    merged = mix.normalization()[sim_arm.tag]

    def frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
        samples = LeRobotSamples(path, split="train", horizon=1, tag=sim_arm.tag)
        rows = [samples.sample(i, images=False) for i in range(len(samples))]
        return np.stack([r.state for r in rows]), np.stack([r.actions[0] for r in rows])

    (state_a, action_a), (state_b, action_b) = frames(dataset), frames(other)
    np.testing.assert_allclose(action_b, action_a * 3 + 5, rtol=1e-5, atol=1e-5)  # the copy is the shifted A
    pooled_state = np.concatenate([state_a, state_a, state_b])
    pooled_action = np.concatenate([action_a, action_a, action_b])
    for normalizer, pooled in ((merged.state, pooled_state), (merged.action, pooled_action)):
        expected = Stats.compute(pooled)
        for key in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(getattr(normalizer.stats, key), getattr(expected, key), rtol=1e-6, atol=1e-6)
        for key, q in (("q01", 0.01), ("q99", 0.99)):
            np.testing.assert_allclose(getattr(normalizer.stats, key),
                                       np.quantile(pooled, q, axis=0, method="inverted_cdf"), rtol=1e-6, atol=1e-6)
    first = Mixture([DatasetSpec(str(dataset))], split="train", horizon=4, tag=sim_arm.tag).normalization()
    assert merged.action.mode == first[sim_arm.tag].action.mode == "quantile"
    assert merged.state.mode == first[sim_arm.tag].state.mode == "mean_std"
    assert np.all(merged.action.stats.q99 > first[sim_arm.tag].action.stats.max)  # B's range is in
    # a recipe of the two trains, and its checkpoint serves, with the merged statistics
    out = tmp_path / "run"
    mixed = f"datasets=[{{path: {dataset}, weight: 2}}, {{path: {other}, weight: 1}}]"
    assert cli.main([*_args(dataset, out, "train.steps=2", "train.val_every=2"), mixed]) == 0
    stored = json.loads((out / "final/normalization.json").read_text())[sim_arm.tag]
    for part, normalizer in (("state", merged.state), ("action", merged.action)):
        for key, values in normalizer.stats.to_dict().items():
            np.testing.assert_allclose(stored[part][key], values, rtol=1e-6, atol=1e-9)


def test_the_two_process_reach_recipe_is_the_shipped_one_split_over_two_processes(sim_arm):
    from vla_policy_node.experiments.sim_arm.train import RECIPES, recipe

    shipped = load_recipe(REPO / "config/train/sim_reach.yaml", ["datasets=[demos/dataset]", "output_dir=runs/x"])
    split = dataclasses.replace(shipped, train=dataclasses.replace(shipped.train, batch_size=16))
    assert recipe(sim_arm, "demos/dataset", "runs/x", RECIPES["reach_ddp"]) == split  # 2 x 16 = the shipped 32
    assert RECIPES["reach_ddp"].processes == 2


def test_the_pick_place_wrist_recipe_is_the_second_stage_config(sim_arm):
    from vla_policy_node.experiments.sim_arm.train import RECIPES, recipe

    shipped = load_recipe(REPO / "config/train/sim_pick_place_wrist.yaml", ["datasets=[demos/dataset]",
                                                                            "output_dir=runs/x"])
    assert recipe(sim_arm, "demos/dataset", "runs/x", RECIPES["pick_place_wrist"]) == shipped
    assert shipped.camera_topics == "scene:/scene_camera/image_raw,wrist:/wrist_camera/image_raw"


def test_the_pick_place_recovery_recipe_is_the_third_stage_config(sim_arm):
    from vla_policy_node.experiments.sim_arm.train import RECIPES, recipe

    shipped = load_recipe(REPO / "config/train/sim_pick_place_recovery.yaml", ["datasets=[demos/dataset]",
                                                                               "output_dir=runs/x"])
    assert recipe(sim_arm, "demos/dataset", "runs/x", RECIPES["pick_place_recovery"]) == shipped
    assert shipped.model.init_from == "runs/sim_pick_place_wrist/final" and shipped.train.lr == 5e-4
    assert shipped.deploy.strategy == "ensemble"  # as the shipped checkpoint's deployment.json
