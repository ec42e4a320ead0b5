"""The one transform pipeline: training (the Trainer's collation) and serving (VLAPolicy) feed the model identical
tensors for the same sample, for the flow head and a token head; camera selection, resize, normalization and
padding are steps of it, and its output steps undo the input steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from test.asa.helpers import build as build_adapter_policy
from test.model.helpers import limits_normalization, observation
from vla_policy_node.model.checkpoint import save_checkpoint
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.transforms.frame import Frame
from vla_policy_node.model.transforms.pipeline import TransformPipeline
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec import Embodiment, ObservationError
from vla_policy_node.spec.images import fit_image
from vla_policy_node.train.data import Sample, collate
from vla_policy_node.train.trainer import TrainConfig, Trainer


def _model(kind: str, emb: Embodiment):
    torch.manual_seed(0)
    if kind == "flow":
        return build_tiny_vla([emb]), limits_normalization(emb)
    model, norm, _ = build_adapter_policy(kind, emb, lora=False)
    return model, norm


def _sample(emb: Embodiment, horizon: int, color: str = "blue") -> Sample:
    obs = observation(emb, color)
    actions = obs.state + np.linspace(0.0, 0.2, horizon)[:, None] * np.ones(emb.action_dim)
    return Sample(dict(obs.images), obs.state, actions, obs.instruction, emb.tag)


def _assert_same_model_inputs(train: dict, serve: dict) -> None:
    assert set(train["inputs"]) == set(serve["inputs"])
    for key, value in train["inputs"].items():
        assert value.dtype == serve["inputs"][key].dtype, key
        assert torch.equal(value, serve["inputs"][key]), key
    for key in ("state", "category"):
        assert train[key].dtype == serve[key].dtype and torch.equal(train[key], serve[key]), key


@pytest.mark.parametrize("head", ["flow", "uniform"])
def test_training_and_serving_feed_the_model_identical_inputs(head: str, sim_arm: Embodiment,
                                                              tmp_path: Path) -> None:
    """What `VLAModel.loss` gets in a Trainer step equals what `VLAModel.predict` gets from `VLAPolicy.infer`."""
    model, norm = _model(head, sim_arm)
    sample = _sample(sim_arm, model.config.head.horizon)
    seen: dict[str, dict] = {}
    loss, predict = model.loss, model.predict

    def spy_loss(batch):
        seen["train"] = batch
        return loss(batch)

    def spy_predict(batch, **options):
        seen["serve"] = batch
        return predict(batch, **options)

    model.loss, model.predict = spy_loss, spy_predict
    try:
        config = TrainConfig(output_dir=str(tmp_path), steps=1, batch_size=1, progress=False, save_every=10**6)
        Trainer(model, norm, [sample], config).train_step()
        obs = observation(sim_arm, "blue", stamp=4.0)
        VLAPolicy(model, norm, sim_arm).infer(obs)
    finally:
        del model.loss, model.predict
    train, serve = seen["train"], seen["serve"]
    _assert_same_model_inputs(train, serve)
    assert "pixel_values" in serve["inputs"]  # the images really are part of what was compared
    prompt = model.backbone.processor.tokenizer.decode(serve["inputs"]["input_ids"][0])
    assert "reach the blue block" in prompt
    if head == "flow":  # (the adapter's stats come from samples that all share one state: it normalizes to 0)
        assert not torch.equal(serve["state"], torch.zeros_like(serve["state"]))


def test_frames_of_another_size_are_resized_as_the_robot_resizes_them(sim_arm: Embodiment) -> None:
    """A checkpoint records the camera sizes it was trained at; training frames of another size are resized by
    the same function the policy node uses, so both reach the model alike."""
    model, norm = _model("flow", sim_arm)
    assert model.config.embodiments[0].camera_sizes == ((128, 128), (128, 128))
    sample = _sample(sim_arm, model.config.head.horizon)
    rng = np.random.default_rng(0)
    small = {name: rng.integers(0, 256, (60, 90, 3), dtype=np.uint8) for name in sample.images}
    training = TransformPipeline.from_model(model, norm)
    serving = TransformPipeline.from_model(model, norm, sim_arm)
    batch = collate([Sample(small, sample.state, sample.actions, sample.instruction, sample.tag)], model, norm)
    obs = observation(sim_arm, "blue")
    fitted = {cam.name: fit_image(small[cam.name], cam) for cam in sim_arm.cameras}
    served = serving.inputs([Frame(tag=sim_arm.tag, images=fitted, state=obs.state, instruction=obs.instruction)])
    _assert_same_model_inputs(batch, served)
    unresized = training.backbone_inputs([list(small.values())], [sample.instruction])  # without the step
    assert not torch.equal(unresized["pixel_values"], served["inputs"]["pixel_values"])


def test_a_camera_the_checkpoint_reads_must_be_there(sim_arm: Embodiment) -> None:
    model, norm = _model("flow", sim_arm)
    sample = _sample(sim_arm, model.config.head.horizon)
    with pytest.raises(ObservationError, match=r"sample 0: missing camera 'wrist'"):
        collate([Sample({"scene": sample.images["scene"]}, sample.state, sample.actions, sample.instruction,
                        sample.tag)], model, norm)


def test_output_steps_undo_the_input_steps(sim_arm: Embodiment) -> None:
    model, norm = _model("flow", sim_arm)
    pipeline = TransformPipeline.from_model(model, norm, sim_arm)
    actions = _sample(sim_arm, model.config.head.horizon).actions
    encoded = pipeline.encode_actions(actions, sim_arm.tag)
    assert encoded.shape == (model.config.head.horizon, model.config.head.max_action_dim)
    assert np.all(encoded[:, sim_arm.action_dim:] == 0)  # padded
    assert not np.allclose(encoded[:, : sim_arm.action_dim], actions)  # normalized
    (back,) = pipeline.outputs(torch.from_numpy(encoded)[None], [sim_arm.tag])
    np.testing.assert_allclose(back, actions, atol=1e-5)


def test_pipeline_from_checkpoint_files_equals_the_loaded_models(sim_arm: Embodiment, tmp_path: Path) -> None:
    """A data loader can build the pipeline from a checkpoint directory without loading weights."""
    model, norm = _model("uniform", sim_arm)
    save_checkpoint(model, norm, tmp_path)
    sample = _sample(sim_arm, model.config.head.horizon)
    from_files = TransformPipeline.from_checkpoint(tmp_path)
    from_model = TransformPipeline.from_model(model, norm)
    frames = [Frame(tag=sample.tag, images=sample.images, state=sample.state, instruction=sample.instruction,
                    actions=sample.actions)]
    a, b = from_files.collate(frames), from_model.collate(frames)
    _assert_same_model_inputs(a, b)
    assert torch.equal(a["actions"], b["actions"]) and torch.equal(a["action_mask"], b["action_mask"])
