"""Issue 13, finding 2: time is judged against the node's own clock with bounded tolerance.

A stamp from the future beyond the tolerance is rejected and counted and does not poison later messages; a
clock jump backwards (a bag restart under use_sim_time, an NTP step) resets the sync state with a message in
the status; ages in the status are never negative.
"""

from __future__ import annotations

import numpy as np

from test.control.faults import MuxDriver, mux_loop
from test.control.helpers import IMAGE, make_chunk, mid_state
from vla_policy_node.control import ArmTarget, ControlLoop


class PolicyNode:
    """The policy node's loop, fed at 100 Hz (cameras every tick); a fresh chunk holding still on demand."""

    def __init__(self, emb, now: float = 1000.0) -> None:
        self.loop = ControlLoop(emb)
        self.emb = emb
        self.now = now
        self.state = mid_state(emb)
        self.commands = []

    def feed(self, stamp: float | None = None) -> None:
        stamp = self.now if stamp is None else stamp
        self.loop.on_joint_state(stamp, self.emb.state_names, self.state, self.now)
        for cam in self.emb.camera_names:
            self.loop.on_image(cam, stamp, IMAGE, "rgb8", self.now)

    def step(self, n: int = 1, dt: float = 0.01) -> None:
        for _ in range(n):
            self.now = round(self.now + dt, 9)
            self.feed()
            if self.loop.should_request_inference(self.now):
                obs = self.loop.sync.poll(self.now)
                if obs is not None:
                    self.loop.begin_inference(obs, self.now)
                    chunk = make_chunk(self.emb, obs.stamp, np.tile(self.state[:6], (30, 1)), self.state[6])
                    self.loop.on_chunk(chunk, 0.01, self.now)
            self.commands.append(self.loop.tick(self.now))


def test_a_future_stamp_is_rejected_and_does_not_blind_the_policy(sim_arm):
    node = PolicyNode(sim_arm)
    node.step(30)
    assert node.commands[-1].source == "policy"
    node.now += 0.01
    assert not node.loop.on_joint_state(node.now + 3600.0, sim_arm.state_names, node.state, node.now)
    node.step(30)  # correct stamps again
    status = node.loop.status(node.now)
    assert node.commands[-1].source == "policy" and "joint_states" not in status.stale_inputs
    assert dict(status.input_rejections)["joint_states.future_stamp"] == 1
    assert node.loop.sync.poll(node.now + 0.001) is not None or node.loop.sync.sets_matched > 3


def test_ages_are_never_negative(sim_arm):
    node = PolicyNode(sim_arm)
    node.step(5)
    node.now += 0.01
    node.feed(stamp=node.now + 0.05)  # a little ahead (clock skew within the tolerance): accepted
    status = node.loop.status(node.now)
    assert min(age for _, age in status.all_input_ages) >= 0.0, status.all_input_ages


def test_a_clock_jump_back_resets_the_sync_and_the_policy_recovers(sim_arm):
    node = PolicyNode(sim_arm)
    node.step(40)
    held = node.commands[-1].arm.copy()
    node.now = 5.0  # the bag restarted
    node.step(1)
    status = node.loop.status(node.now)
    assert "clock jumped back" in status.fault, status.fault
    node.step(60)
    assert node.commands[-1].source == "policy", node.loop.status(node.now).hold_reasons
    arms = np.stack([c.arm for c in node.commands[40:]])
    assert np.max(np.abs(arms - held)) < 1e-9  # holding still throughout, no jump


def test_teleop_freshness_survives_a_clock_jump_back(sim_arm):
    """A teleop message received before the clock went back 100 s is as old as the time that really passed,
    not 100 s younger."""
    start = mid_state(sim_arm)
    drive = MuxDriver(mux_loop(sim_arm), start)
    drive.step(5)
    drive.loop.on_teleop(ArmTarget(start[:6] + 0.05), drive.now)
    drive.step(10)
    assert drive.commands[-1].source == "teleop"
    drive.now -= 100.0
    drive.step(60)  # 0.6 s later: past the 0.5 s teleop timeout
    assert drive.commands[-1].source == "hold", drive.status().hold_reasons
