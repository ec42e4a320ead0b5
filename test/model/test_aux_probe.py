"""The auxiliary env-state probe and the instruction-first prompt: training-only signal, saved and reloaded with
the checkpoint, never needed at inference; image tokens can see the instruction only when it comes first."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from test.model.helpers import limits_normalization, observation
from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.checkpoint import load_checkpoint, save_checkpoint
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec import Embodiment
from vla_policy_node.train.data import Sample, collate

AUX = AuxProbeConfig(("x", "y"), mean=(0.45, 0.0), std=(0.07, 0.12), weight=0.5)


def _sample(emb: Embodiment, env_state: np.ndarray | None, color: str = "red") -> Sample:
    obs = observation(emb, color)
    actions = np.tile(obs.state, (16, 1))
    return Sample(obs.images, obs.state, actions, obs.instruction, emb.tag, env_state=env_state)


def _model(emb: Embodiment, aux: AuxProbeConfig | None = AUX, **backbone):
    torch.manual_seed(0)
    return build_tiny_vla([emb], aux=aux, backbone_overrides={"freeze": False, **backbone})


def test_config_validation_and_normalization() -> None:
    with pytest.raises(ValueError, match="equal length"):
        AuxProbeConfig(("x", "y"), mean=(0.0,), std=(1.0, 1.0))
    with pytest.raises(ValueError, match="std positive"):
        AuxProbeConfig(("x",), mean=(0.0,), std=(0.0,))
    with pytest.raises(ValueError, match="weight"):
        AuxProbeConfig(("x",), mean=(0.0,), std=(1.0,), weight=-1.0)
    fitted = AuxProbeConfig.fit(("x", "y"), np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert fitted.mean == (2.0, 5.0) and fitted.std[0] == 1.0 and fitted.std[1] > 0  # constant column stays finite
    np.testing.assert_allclose(fitted.normalize(np.array([3.0, 5.0])), [1.0, 0.0])


def test_loss_adds_the_weighted_aux_term_and_trains_the_backbone(sim_arm: Embodiment) -> None:
    model = _model(sim_arm)
    norm = limits_normalization(sim_arm)
    batch = collate([_sample(sim_arm, np.array([0.5, 0.1])), _sample(sim_arm, np.array([0.4, -0.1]), "blue")],
                    model, norm)
    np.testing.assert_allclose(batch["env_state"].numpy(), [AUX.normalize([0.5, 0.1]), AUX.normalize([0.4, -0.1])],
                               rtol=1e-6)
    torch.manual_seed(1)
    loss = model.loss(batch)
    terms = model.last_loss_terms
    assert loss.item() == pytest.approx(terms["action_loss"] + AUX.weight * terms["aux_loss"], rel=1e-5)
    loss.backward()
    probe_grad = model.aux_probe.query.grad
    assert probe_grad is not None and probe_grad.abs().sum() > 0
    vision = [p for n, p in model.backbone.named_parameters() if "visual" in n]
    assert vision and any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision)


def test_aux_term_changes_the_gradient_reaching_the_backbone(sim_arm: Embodiment) -> None:
    """The probe is not a detached side branch: with it, the backbone is pushed towards the target's position."""
    norm = limits_normalization(sim_arm)
    grads = []
    for aux in (None, AUX):
        model = _model(sim_arm, aux)
        batch = collate([_sample(sim_arm, np.array([0.5, 0.1]))], model, norm)
        torch.manual_seed(1)
        model.loss(batch).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.backbone.parameters() if p.grad is not None]))
    assert not torch.allclose(grads[0], grads[1])


def test_collate_refuses_samples_without_env_state(sim_arm: Embodiment) -> None:
    model = _model(sim_arm)
    norm = limits_normalization(sim_arm)
    with pytest.raises(ValueError, match="needs env_state"):
        collate([_sample(sim_arm, None)], model, norm)
    with pytest.raises(ValueError, match="2 finite values"):
        collate([_sample(sim_arm, np.array([np.nan, 0.0]))], model, norm)
    with pytest.raises(ValueError, match="2 finite values"):
        collate([_sample(sim_arm, np.array([0.1, 0.2, 0.3]))], model, norm)
    plain = _model(sim_arm, None)  # without a probe, env_state is simply not used
    assert "env_state" not in collate([_sample(sim_arm, np.array([0.5, 0.1]))], plain, norm)


def test_checkpoint_keeps_the_probe_and_inference_does_not_need_it(sim_arm: Embodiment, tmp_path) -> None:
    model = _model(sim_arm)
    norm = limits_normalization(sim_arm)
    with torch.no_grad():
        model.aux_probe.mlp[-1].bias.fill_(0.25)
    directory = save_checkpoint(model, norm, tmp_path / "ckpt")
    loaded, _ = load_checkpoint(directory)
    assert loaded.config.aux == AUX
    batch = collate([_sample(sim_arm, np.array([0.5, 0.1]))], model, norm)
    expected = model.eval().predict_env_state(batch["inputs"], batch["state"], batch["category"])
    got = loaded.predict_env_state(batch["inputs"], batch["state"], batch["category"])
    torch.testing.assert_close(got, expected)
    policy = VLAPolicy.from_checkpoint(directory, sim_arm, seed=3)
    chunk = policy.infer(observation(sim_arm))  # an observation has no env state: the probe is not involved
    assert np.all(np.isfinite(chunk.actions))


def test_probe_needs_a_flow_head(sim_arm: Embodiment) -> None:
    model = _model(sim_arm, None)
    with pytest.raises(ValueError, match="flow head"):
        dataclasses.replace(model.config, head=types.SimpleNamespace(type="asa"), aux=AUX)


@pytest.mark.parametrize("first", [False, True])
def test_instruction_first_lets_image_tokens_see_the_instruction(sim_arm: Embodiment, first: bool) -> None:
    """Causal decoder: image-token features depend on the instruction only when it precedes the images."""
    model = _model(sim_arm, None, instruction_first=first).eval()
    obs = observation(sim_arm)
    image_token = model.backbone.model.config.image_token_id
    features = []
    for text in ("reach the red block", "reach the blue block"):
        inputs = model.backbone.prepare([[obs.images[c] for c in sim_arm.camera_names]], [text])
        with torch.no_grad():
            feats, _ = model.backbone(inputs)
        features.append(feats[0][inputs["input_ids"][0] == image_token])
    prompt = model.backbone.processor.tokenizer.decode(inputs["input_ids"][0])
    assert (prompt.index("reach the") < prompt.index("<|vision_start|>")) == first
    assert torch.allclose(features[0], features[1]) != first
