"""Shared builders for the control tests (imported by the test modules of this folder)."""

from __future__ import annotations

import numpy as np

from vla_policy_node.spec import ActionChunk, Embodiment

IMAGE = np.zeros((4, 4, 3), np.uint8)


def feed_observation(loop, now: float, state: np.ndarray) -> None:
    """Fresh joint state and images for every camera at `now`, so the watchdog sees live inputs."""
    emb: Embodiment = loop.embodiment
    loop.sync.add_joint_state(now, emb.state_names, state, now)
    for cam in emb.camera_names:
        loop.sync.add_image(cam, now, IMAGE, "rgb8", now)


def make_chunk(emb: Embodiment, stamp: float, arm: np.ndarray, gripper: float | np.ndarray = 0.02,
               dt: float = 0.1) -> ActionChunk:
    """A chunk in the embodiment's action order from arm rows [H, n] (or one row, repeated 8 times)."""
    arm = np.atleast_2d(np.asarray(arm, dtype=np.float64))
    if arm.shape[0] == 1:
        arm = np.repeat(arm, 8, axis=0)
    cols = [arm]
    if emb.gripper is not None:
        cols.append(np.broadcast_to(np.asarray(gripper, dtype=np.float64), (len(arm),))[:, None])
    return ActionChunk(stamp=stamp, dt=dt, actions=np.hstack(cols), names=emb.action_names)


def mid_state(emb: Embodiment) -> np.ndarray:
    """Joint mid-range positions, gripper half open, in state_names order."""
    mid = [(j.lower + j.upper) / 2 for j in emb.joints]
    if emb.gripper is not None:
        mid.append((emb.gripper.lower + emb.gripper.upper) / 2)
    return np.array(mid)


def small_robot(
    joints: int = 1,
    lower: float = -1.0,
    upper: float = 1.0,
    vmax: float = 1.0,
    amax: float = 10.0,
    jerk: float | None = None,
    margin: float = 0.0,
    max_relative_target: float | None = None,
    control_hz: float = 100.0,
    gripper: bool = True,
    action_type: str = "joint_position",
) -> Embodiment:
    """A tiny embodiment with round numbers for hand-computed limit tests."""
    specs = []
    for i in range(joints):
        spec = {"name": f"j{i}", "lower": lower, "upper": upper, "max_velocity": vmax, "max_acceleration": amax}
        if jerk is not None:
            spec["max_jerk"] = jerk
        specs.append(spec)
    data = {
        "name": "tiny",
        "joints": specs,
        "cameras": [{"name": "cam", "topic": "/cam/image_raw", "max_age": 0.2}],
        "rates": {"control_hz": control_hz, "action_dt": 0.1, "inference_hz": 10.0},
        "safety": {"position_margin": margin, "max_relative_target": max_relative_target},
        "action_space": {"type": action_type},
    }
    if gripper:
        data["gripper"] = {"name": "grip", "lower": 0.0, "upper": 0.08, "max_velocity": 0.1,
                           "interface": "forward_command", "topic": "/grip/commands"}
    return Embodiment.from_dict(data)


def cartesian_robot(kind: str = "ee_pose") -> Embodiment:
    """A 6-joint arm with a Cartesian action space: workspace [-0.5, 0.5]^2 x [0, 1], 0.2 m/s, 1 rad/s."""
    data = {
        "name": "cart",
        "joints": [{"name": f"j{i}", "lower": -3.0, "upper": 3.0, "max_velocity": 2.0, "max_acceleration": 5.0}
                   for i in range(6)],
        "cameras": [{"name": "cam", "topic": "/cam/image_raw", "max_age": 0.2}],
        "rates": {"control_hz": 100.0, "action_dt": 0.1, "inference_hz": 10.0},
        "action_space": {"type": kind, "ee_link": "tool0", "workspace_min": [-0.5, -0.5, 0.0],
                         "workspace_max": [0.5, 0.5, 1.0], "max_linear_speed": 0.2, "max_angular_speed": 1.0},
        "controller": {"interface": "servo_pose" if kind == "ee_pose" else "servo_twist", "topic": "/servo/cmd"},
        "gripper": {"name": "grip", "lower": 0.0, "upper": 0.08, "max_velocity": 0.1,
                    "interface": "forward_command", "topic": "/grip/commands"},
    }
    return Embodiment.from_dict(data)
