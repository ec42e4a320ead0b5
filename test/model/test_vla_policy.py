"""infer(observation) -> ActionChunk end to end with tiny models of every backbone family."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from test.model.helpers import limits_normalization, observation
from vla_policy_node.model.embodiment_slot import UnknownEmbodimentError
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec import Embodiment, ObservationError, RtcPrefix
from vla_policy_node.spec.protocol import Policy


@pytest.fixture(scope="module")
def model(sim_arm: Embodiment):
    torch.manual_seed(0)
    return build_tiny_vla([sim_arm])


def make_policy(model, emb: Embodiment, seed: int = 0) -> VLAPolicy:
    return VLAPolicy(model, limits_normalization(emb), emb, seed=seed)


def test_chunk_shape_units_and_stamp(model, sim_arm: Embodiment) -> None:
    policy = make_policy(model, sim_arm)
    assert isinstance(policy, Policy)
    chunk = policy.infer(observation(sim_arm, stamp=12.5))
    assert chunk.actions.shape == (16, 7) and chunk.actions.dtype == np.float64
    assert chunk.names == sim_arm.action_names
    assert chunk.stamp == 12.5 and chunk.dt == sim_arm.rates.action_dt
    t = policy.last_timings
    assert len(t.head_steps_ms) == 4 and t.total_ms >= t.backbone_ms > 0


def test_seeded_reproducible(model, sim_arm: Embodiment) -> None:
    obs = observation(sim_arm)
    a = make_policy(model, sim_arm, seed=3).infer(obs).actions
    b = make_policy(model, sim_arm, seed=3).infer(obs).actions
    c = make_policy(model, sim_arm, seed=4).infer(obs).actions
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_batched_inference(model, sim_arm: Embodiment) -> None:
    policy = make_policy(model, sim_arm)
    obs = [observation(sim_arm, "red", 1.0), observation(sim_arm, "blue", 2.0)]
    chunks = policy.infer_batch(obs)
    assert [c.stamp for c in chunks] == [1.0, 2.0]
    assert not np.allclose(chunks[0].actions, chunks[1].actions)


def test_rtc_prefix_is_reproduced_in_physical_units(model, sim_arm: Embodiment) -> None:
    policy = make_policy(model, sim_arm)
    planned = policy.infer(observation(sim_arm)).actions
    weights = np.zeros(16)
    weights[:4] = 1.0
    guided = policy.infer(observation(sim_arm, "green"), prefix=RtcPrefix(planned, weights)).actions
    np.testing.assert_allclose(guided[:4], planned[:4], atol=1e-4)
    assert not np.allclose(guided[8:], planned[8:], atol=1e-3)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "paligemma", "paligemma2", "idefics3", "smolvlm"])
def test_every_backbone_family_predicts(family: str, sim_arm: Embodiment) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm], family)
    chunk = make_policy(model, sim_arm).infer(observation(sim_arm))
    assert chunk.actions.shape == (16, 7) and np.all(np.isfinite(chunk.actions))


def test_bad_inputs_raise_clear_errors(model, sim_arm: Embodiment, franka: Embodiment) -> None:
    policy = make_policy(model, sim_arm)
    obs = observation(sim_arm)
    with pytest.raises(ObservationError, match="missing camera"):
        policy.infer(dataclasses.replace(obs, images={"scene": obs.images["scene"]}))
    with pytest.raises(ObservationError, match="HxWx3"):
        policy.infer(dataclasses.replace(obs, images={**obs.images, "wrist": obs.images["wrist"][..., :1]}))
    with pytest.raises(ObservationError, match="expects 128x128"):
        policy.infer(dataclasses.replace(obs, images={**obs.images, "wrist": np.zeros((32, 64, 3), np.uint8)}))
    with pytest.raises(ObservationError, match="state must have 7 values"):
        policy.infer(dataclasses.replace(obs, state=np.zeros(6)))
    with pytest.raises(ObservationError, match="NaN"):
        policy.infer(dataclasses.replace(obs, state=np.full(7, np.nan)))
    with pytest.raises(UnknownEmbodimentError, match=r"unknown embodiment 'franka_fr3'.*knows \['sim_arm'\]"):
        make_policy(model, franka)
    renamed = dataclasses.replace(sim_arm, joints=(dataclasses.replace(sim_arm.joints[0], name="j1"),
                                                   *sim_arm.joints[1:]))
    with pytest.raises(ValueError, match="trained with state names"):
        make_policy(model, renamed)
    no_wrist = dataclasses.replace(sim_arm, cameras=sim_arm.cameras[:1])
    with pytest.raises(ValueError, match=r"has no camera \['wrist'\]"):
        make_policy(model, no_wrist)


def test_policy_on_a_subset_of_the_robot_cameras_reads_only_those(sim_arm: Embodiment) -> None:
    """A robot may carry more cameras than a policy was trained with; the others are not fed to the model."""
    torch.manual_seed(0)
    scene_only = dataclasses.replace(sim_arm, cameras=sim_arm.cameras[:1])
    model = build_tiny_vla([scene_only])
    obs = observation(sim_arm)

    def infer(images):  # a fresh policy per call: the same seeded noise
        return make_policy(model, sim_arm).infer(dataclasses.replace(obs, images=images)).actions  # scene + wrist

    chunk = infer(obs.images)
    np.testing.assert_array_equal(infer({**obs.images, "wrist": np.zeros_like(obs.images["wrist"])}), chunk)
    assert not np.array_equal(infer({**obs.images, "scene": np.zeros_like(obs.images["scene"])}), chunk)


def test_non_finite_model_output_is_refused(sim_arm: Embodiment) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    with torch.no_grad():
        model.head.action_decoder.layer2.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN/Inf actions"):
        make_policy(model, sim_arm).infer(observation(sim_arm))


def test_backbone_runs_once_per_chunk_head_once_per_step(model, sim_arm: Embodiment) -> None:
    policy = VLAPolicy(model, limits_normalization(sim_arm), sim_arm, num_steps=6)
    calls = {"backbone": 0, "velocity": 0}
    hook = model.backbone.register_forward_hook(lambda *_: calls.__setitem__("backbone", calls["backbone"] + 1))
    original = model.head.velocity

    def counting_velocity(*args, **kwargs):
        calls["velocity"] += 1
        return original(*args, **kwargs)

    model.head.velocity = counting_velocity
    try:
        policy.infer_batch([observation(sim_arm), observation(sim_arm, "blue")])
    finally:
        hook.remove()
        del model.head.velocity
    assert calls == {"backbone": 1, "velocity": 6}
