"""Test doubles for the node runtimes: a transport with services, a settable clock, scripted policies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from test.fake_transport import RecordingTransport
from vla_policy_node.msgs import encode_image, encode_joint_state
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix


class ServiceTransport(RecordingTransport):
    """RecordingTransport plus services: `call(name, **request_fields)` runs the handler like a client would."""

    def __init__(self, clock: float = 100.0) -> None:
        super().__init__(clock)
        self.services: dict[str, tuple[str, Callable[[Any], Any]]] = {}
        self.node_name = "test_node"

    def service(self, name: str, srvtype: str, handler: Callable[[Any], Any]) -> Any:
        resolved = f"/{self.node_name}{name[1:]}" if name.startswith("~") else name
        self.services[resolved] = (srvtype, handler)
        return _Closable()

    def call(self, name: str, **fields: Any) -> Any:
        srvtype, handler = self.services[name]
        return handler(self.new_request(srvtype, **fields))

    def messages(self, topic: str) -> list[Any]:
        return [msg for t, _, msg in self.sent if t == topic]

    def advance(self, seconds: float) -> float:
        self.clock += seconds
        return self.clock


class _Closable:
    def close(self) -> None:
        pass


def joint_state_msg(t: RecordingTransport, embodiment: Embodiment, positions, stamp: float) -> Any:
    return encode_joint_state(t.new_message, embodiment.state_names, positions, stamp=stamp)


def image_msg(t: RecordingTransport, height: int, width: int, stamp: float, encoding: str = "rgb8") -> Any:
    rgb = np.full((height, width, 3), 100, np.uint8)
    return encode_image(t.new_message, rgb, encoding, stamp=stamp)


def mid_state(embodiment: Embodiment) -> np.ndarray:
    arm = [(j.lower + j.upper) / 2 for j in embodiment.joints]
    grip = [embodiment.gripper.upper] if embodiment.gripper else []
    return np.array(arm + grip)


class ScriptedPolicy:
    """Answers every observation with a chunk moving `step` per action from the observed state."""

    def __init__(self, embodiment: Embodiment, step: float = 0.01, horizon: int = 16, delay: float = 0.0) -> None:
        self.embodiment = embodiment
        self.step = step
        self.horizon = horizon
        self.delay = delay
        self.calls: list[Observation] = []

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        self.calls.append(observation)
        if self.delay:
            time.sleep(self.delay)
        ramp = np.arange(1, self.horizon + 1)[:, None] * self.step
        actions = np.asarray(observation.state, dtype=np.float64)[None, :] + ramp
        if self.embodiment.gripper is not None:
            actions[:, -1] = observation.state[-1]
        return ActionChunk(observation.stamp, self.embodiment.rates.action_dt, actions,
                           self.embodiment.action_names)


class FailingPolicy:
    def __init__(self) -> None:
        self.calls = 0

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        self.calls += 1
        raise RuntimeError("CUDA error: device-side assert triggered")
