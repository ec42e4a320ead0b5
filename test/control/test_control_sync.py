"""Observation sync: pairing (ApproximateTime and image trigger), joint reorder, rejection and staleness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_policy_node.control.config import SyncConfig
from vla_policy_node.control.pairing import ApproximateTimePairing
from vla_policy_node.control.sync import JOINT_STATES, SYNC, ObservationSync

IMG = np.zeros((4, 4, 3), np.uint8)


def img(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def joint_msg(sim_arm, scale: float = 1.0):
    """sim_arm joint state in a scrambled order with an extra joint, positions = index * scale."""
    names = [*reversed(sim_arm.state_names), "some_other_joint"]
    positions = [scale * sim_arm.state_names.index(n) if n in sim_arm.state_names else 99.0 for n in names]
    return names, positions


def test_joint_state_is_reordered_into_state_names(sim_arm):
    sync = ObservationSync(sim_arm)
    names, positions = joint_msg(sim_arm)
    assert sync.add_joint_state(1.0, names, positions, now=1.0)
    stamp, state = sync.latest_state()
    assert stamp == 1.0
    np.testing.assert_allclose(state, np.arange(7))  # joints 1..6 then the gripper, extra joint dropped


def test_missing_joint_is_rejected_and_reported(sim_arm):
    sync = ObservationSync(sim_arm)
    names = list(sim_arm.joint_names)  # no gripper
    assert not sync.add_joint_state(1.0, names, np.zeros(6), 1.0)
    stats = sync.stats[JOINT_STATES]
    assert stats.rejected["missing_joints"] == 1 and "gripper" in stats.last_error
    assert sync.latest_state() is None
    assert not sync.add_joint_state(1.1, [*names, "gripper"], [0, 0, 0, 0, 0, math.nan, 0], 1.1)
    assert stats.rejected["nonfinite"] == 1
    assert not sync.add_joint_state(1.2, [*names, "gripper"], np.zeros(6), 1.2)
    assert stats.rejected["malformed"] == 1


def test_out_of_order_stamps_are_rejected(sim_arm):
    sync = ObservationSync(sim_arm)
    names, pos = joint_msg(sim_arm)
    assert sync.add_joint_state(2.0, names, pos, 2.0)
    assert not sync.add_joint_state(1.9, names, pos, 2.0)
    assert not sync.add_joint_state(2.0, names, pos, 2.0)  # a duplicate is not newer either
    assert sync.stats[JOINT_STATES].rejected["out_of_order"] == 2
    assert sync.add_image("scene", 2.0, IMG, "rgb8", 2.0)
    assert not sync.add_image("scene", 1.5, IMG, "rgb8", 2.0)
    assert sync.stats["scene"].rejected["out_of_order"] == 1


@pytest.mark.parametrize("encoding", ["16UC1", "bayer_rggb8", "yuv422", "32FC1", ""])
def test_unsupported_encoding_is_counted_not_used(sim_arm, encoding):
    sync = ObservationSync(sim_arm)
    assert not sync.add_image("scene", 1.0, IMG, encoding, 1.0)
    assert sync.stats["scene"].rejected["unsupported_encoding"] == 1
    assert sync.stats["scene"].accepted == 0
    assert encoding in sync.stats["scene"].last_error


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "RGBA8", "rgb8; jpeg compressed bgr8", "jpeg"])
def test_supported_encodings(sim_arm, encoding):
    assert ObservationSync(sim_arm).add_image("scene", 1.0, IMG, encoding, 1.0)


@pytest.mark.parametrize(
    "image", [None, np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)]
)
def test_images_not_in_rgb_uint8_layout_are_rejected(sim_arm, image):
    sync = ObservationSync(sim_arm)
    assert not sync.add_image("wrist", 1.0, image, "rgb8", 1.0)
    assert sync.stats["wrist"].rejected["bad_image"] == 1


def test_unknown_camera_is_counted(sim_arm):
    sync = ObservationSync(sim_arm)
    assert not sync.add_image("thermal", 1.0, IMG, "rgb8", 1.0)
    assert sync.unknown_inputs["thermal"] == 1


def test_approximate_pairing_hand_computed():
    pairing = ApproximateTimePairing(("a", "b", "j"), queue_size=5, slop=0.02)
    assert pairing.add("j", 1.000, "j0") is None
    assert pairing.add("j", 1.010, "j1") is None
    assert pairing.add("a", 1.012, "a0") is None  # no b yet
    matched = pairing.add("b", 1.015, "b0")
    # b0 pairs with the nearest candidates: a0 (3 ms) and j1 (5 ms)
    assert matched == {"a": (1.012, "a0"), "b": (1.015, "b0"), "j": (1.010, "j1")}
    assert pairing.add("b", 1.050, "b1") is None  # used messages are gone; a0 was consumed
    assert pairing.add("a", 1.040, "a1") is None  # j1 consumed; j0 is 40 ms away: beyond slop
    matched = pairing.add("j", 1.045, "j2")
    assert matched == {"a": (1.040, "a1"), "b": (1.050, "b1"), "j": (1.045, "j2")}


def test_approximate_pairing_requires_span_below_slop():
    pairing = ApproximateTimePairing(("a", "b", "j"), queue_size=5, slop=0.02)
    pairing.add("a", 1.000, 0)
    pairing.add("b", 1.025, 0)
    # each is within slop of the new message, but together they span 0.025 s: not a set
    assert pairing.add("j", 1.0125, 0) is None
    assert pairing.add("a", 1.020, 0) is not None  # a later a makes a set with b and that j


def test_queue_size_bounds_memory_and_counts_drops():
    pairing = ApproximateTimePairing(("a", "j"), queue_size=3, slop=0.001)
    for i in range(10):
        pairing.add("j", float(i), i)
    assert pairing.dropped == 7
    assert pairing.add("a", 2.0, "x") is None  # 2.0 was dropped
    assert pairing.add("a", 9.0, "y") == {"a": (9.0, "y"), "j": (9.0, 9)}


def feed(sync, sim_arm, t, cams=("scene", "wrist"), value=1):
    names, pos = joint_msg(sim_arm, scale=t)
    sync.add_joint_state(t, names, pos, t)
    for cam in cams:
        sync.add_image(cam, t + 0.003, img(value), "rgb8", t + 0.003)


def test_poll_gives_a_synchronised_observation_once(sim_arm):
    sync = ObservationSync(sim_arm, SyncConfig(slop=0.01))
    sync.set_instruction("pick the cube")
    assert sync.poll(1.0) is None
    feed(sync, sim_arm, 1.0, value=7)
    obs = sync.poll(1.01)
    assert obs is not None
    assert obs.stamp == pytest.approx(1.003)  # newest member
    assert set(obs.images) == {"scene", "wrist"} and obs.images["scene"][0, 0, 0] == 7
    np.testing.assert_allclose(obs.state, np.arange(7) * 1.0)
    assert obs.instruction == "pick the cube"
    assert obs.meta["stamps"][JOINT_STATES] == 1.0
    assert sync.poll(1.02) is None  # nothing new
    feed(sync, sim_arm, 1.033)
    assert sync.poll(1.04).stamp == pytest.approx(1.036)


def test_image_trigger_takes_joint_state_nearest_before(sim_arm):
    sync = ObservationSync(sim_arm, SyncConfig(mode="image_trigger", slop=0.02, trigger_camera="wrist"))
    names, _ = joint_msg(sim_arm)
    for t in (0.990, 0.996, 1.002, 1.008):
        sync.add_joint_state(t, names, joint_msg(sim_arm, scale=t)[1], t)
    sync.add_image("scene", 0.999, img(3), "rgb8", 1.0)
    assert sync.add_image("wrist", 1.005, img(5), "rgb8", 1.01)
    obs = sync.poll(1.01)
    assert obs is not None
    assert obs.meta["stamps"][JOINT_STATES] == 1.002  # the newest one not after the image
    np.testing.assert_allclose(obs.state, np.arange(7) * 1.002)
    assert obs.meta["stamps"]["scene"] == 0.999


def test_image_trigger_misses_are_counted(sim_arm):
    sync = ObservationSync(sim_arm, SyncConfig(mode="image_trigger", slop=0.01))
    names, pos = joint_msg(sim_arm)
    sync.add_joint_state(1.010, names, pos, 1.01)  # only after the image
    sync.add_image("wrist", 1.000, IMG, "rgb8", 1.01)
    sync.add_image("scene", 1.005, IMG, "rgb8", 1.01)  # scene triggers (first camera)
    assert sync.poll(1.01) is None
    assert sync.unmatched == 1


def test_stale_input_blocks_and_is_reported_with_its_age(sim_arm):
    sync = ObservationSync(sim_arm, SyncConfig(slop=0.01))
    assert set(sync.stale_inputs(0.0)) == {"scene", "wrist", JOINT_STATES, SYNC}  # never received
    feed(sync, sim_arm, 1.0)
    assert sync.stale_inputs(1.05) == []
    # joint states stop; sim_arm allows them 0.1 s
    for t in (1.033, 1.066, 1.099, 1.132):
        sync.add_image("scene", t, IMG, "rgb8", t)
        sync.add_image("wrist", t, IMG, "rgb8", t)
    assert sync.stale_inputs(1.099) == []
    assert JOINT_STATES in sync.stale_inputs(1.101)
    ages = sync.input_ages(1.15)
    assert ages[JOINT_STATES] == pytest.approx(0.15)
    assert ages["scene"] == pytest.approx(1.15 - 1.132)
    assert sync.any_stale(1.15)


def test_a_matched_set_that_is_too_old_blocks_poll(sim_arm):
    sync = ObservationSync(sim_arm, SyncConfig(slop=0.01))
    feed(sync, sim_arm, 1.0)
    # inputs keep arriving but never pair (cameras 50 ms off the joint states)
    for k in range(1, 10):
        t = 1.0 + 0.05 * k
        names, pos = joint_msg(sim_arm)
        sync.add_joint_state(t, names, pos, t)
        sync.add_image("scene", t + 0.025, IMG, "rgb8", t)
        sync.add_image("wrist", t + 0.025, IMG, "rgb8", t)
    now = 1.46
    assert [n for n in sync.stale_inputs(now) if n != SYNC] == []
    assert SYNC in sync.stale_inputs(now)
    assert sync.poll(now) is None


def test_reserved_camera_names_rejected(sim_arm):
    from dataclasses import replace

    cams = (replace(sim_arm.cameras[0], name="joint_states"),)
    with pytest.raises(ValueError):
        ObservationSync(replace(sim_arm, cameras=cams))


def test_frames_are_kept_as_received_and_fitted_when_the_policy_reads_them(sim_arm, monkeypatch):
    """Only frames that reach the policy are resized (the sync and a policy that ignores pixels pay nothing);
    what a policy reads is exactly fit_image of the frame, once."""
    import vla_policy_node.spec.images as images_module

    calls = []
    original = images_module.fit_image
    monkeypatch.setattr(images_module, "fit_image", lambda frame, cam: calls.append(cam.name) or original(frame, cam))
    sync = ObservationSync(sim_arm)
    rng = np.random.default_rng(0)
    frames = {cam: rng.integers(0, 256, (96, 160, 3), dtype=np.uint8) for cam in ("scene", "wrist")}
    for k in range(3):  # three sets: two of them never reach a policy
        for cam, frame in frames.items():
            assert sync.add_image(cam, 1.0 + k * 0.05, frame, "rgb8", 1.0)
        sync.add_joint_state(1.0 + k * 0.05, *joint_msg(sim_arm), 1.0)
    obs = sync.poll(1.11)
    assert calls == []
    assert obs.images.native("scene") is frames["scene"]
    scene = obs.images["scene"]
    assert scene.shape == (128, 128, 3) and calls == ["scene"]
    np.testing.assert_array_equal(scene, original(frames["scene"], sim_arm.camera("scene")))
    assert obs.images["scene"] is scene and calls == ["scene"]  # cached
    assert sorted(obs.images) == ["scene", "wrist"] and len(obs.images) == 2
