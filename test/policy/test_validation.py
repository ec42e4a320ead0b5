"""Observations that must not reach a model are rejected with a message naming the problem."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla_policy_node.spec import Embodiment, Observation, ObservationError
from vla_policy_node.spec.images import fit_image
from vla_policy_node.spec.validation import validate_observation


def good(emb: Embodiment) -> Observation:
    images = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in emb.cameras}
    return Observation(stamp=1.0, images=images, state=np.zeros(emb.state_dim), instruction="reach the red cube")


def test_good_observation_passes(sim_arm: Embodiment) -> None:
    validate_observation(good(sim_arm), sim_arm)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: {"images": {"scene": o.images["scene"]}}, r"missing camera\(s\) \['wrist'\]"),
        (lambda o: {"images": {**o.images, "scene": np.zeros((64, 64, 4), np.uint8)}}, "must be HxWx3 RGB"),
        (lambda o: {"images": {**o.images, "scene": np.zeros((64, 64), np.uint8)}}, "must be HxWx3 RGB"),
        (lambda o: {"images": {**o.images, "wrist": np.zeros((48, 64, 3), np.uint8)}}, "is 48x64 .* expects 128x128"),
        (lambda o: {"images": {**o.images, "scene": np.zeros((64, 64, 3), np.float32)}}, "dtype must be uint8"),
        (lambda o: {"state": np.zeros(3)}, "state must have 7 values"),
        (lambda o: {"state": np.array([0, 0, np.nan, 0, 0, 0, 0.0])}, r"NaN/Inf in \['joint3'\]"),
        (lambda o: {"state": np.array([0, 0, 0, 0, 0, 0, np.inf])}, r"NaN/Inf in \['gripper'\]"),
        (lambda o: {"stamp": float("nan")}, "stamp is not finite"),
        (lambda o: {"instruction": None}, "instruction must be a string"),
    ],
)
def test_bad_observations(sim_arm: Embodiment, change, message: str) -> None:
    obs = good(sim_arm)
    bad = dataclasses.replace(obs, **change(obs))
    with pytest.raises(ObservationError, match=message):
        validate_observation(bad, sim_arm)


def test_fit_image_resizes_to_camera(sim_arm: Embodiment) -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 320:] = (255, 0, 0)
    out = fit_image(frame, sim_arm.camera("scene"))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert out[64, 120, 0] == 255 and out[64, 8, 0] == 0  # right half stays red, left half black
