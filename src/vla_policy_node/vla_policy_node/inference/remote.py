"""The same inference boundary across machines: the control loop next to the arm, the model on a GPU box, DDS between.

    policy = RemotePolicy(transport, embodiment)          # in the policy node: --inference remote
    vla_inference_server --robot-config R --checkpoint C  # on the GPU box (nodes/inference_server.py)

Per inference the control node publishes a vla_msgs/InferenceRequest on /vla/inference/request: the stamps of
the frames its sync chose, the state, the instruction and the RTC prefix (a few hundred bytes). The frames are
not sent again: the server subscribes to the camera topics itself and picks the frames with those stamps. The
answer is a vla_msgs/ActionChunk on /vla/inference/chunk stamped like the observation. `infer` blocks (without
the GIL) until it arrives; none within `timeout` (server down, network lost, model failed) raises
`RemoteInferenceError`, which is the watchdog's hold with that reason in the status, exactly as for a local model.
"""

from __future__ import annotations

import threading
from typing import Any

from vla_policy_node.msgs.chunks import ACTION_CHUNK, decode_action_chunk
from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.inference import INFERENCE_REQUEST, encode_inference_request
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS

REQUEST_TOPIC = "/vla/inference/request"
CHUNK_TOPIC = "/vla/inference/chunk"
STAMP_TOLERANCE = 1e-6  # stamps cross as (sec, nanosec) and float seconds (an ulp at 1.7e9 s is 0.24 us)


class RemoteInferenceError(RuntimeError):
    """No chunk from the remote inference server in time, or an answer that is not a chunk."""


class RemotePolicy:
    """An InferencePolicy whose model runs behind DDS (see the module docstring)."""

    out_of_process = True

    def __init__(self, transport: Transport, embodiment: Embodiment, *, timeout: float = 2.0,
                 request_topic: str = REQUEST_TOPIC, chunk_topic: str = CHUNK_TOPIC) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.transport = transport
        self.embodiment = embodiment
        self.timeout = timeout
        self.chunk_topic = chunk_topic
        self._publisher = transport.publisher(request_topic, INFERENCE_REQUEST, DEFAULT_QOS)
        self._subscription = transport.subscribe(chunk_topic, ACTION_CHUNK, self._on_chunk, DEFAULT_QOS)
        self._cond = threading.Condition()
        self._waiting: float | None = None
        self._answer: ActionChunk | MessageError | None = None
        self._sequence = 0

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        stamps = observation.meta.get("stamps", {}) if observation.meta else {}
        cameras = {}
        for cam in self.embodiment.cameras:
            if cam.name not in stamps:
                raise RemoteInferenceError(f"observation has no stamp for camera {cam.name!r}: the server picks "
                                           "frames by stamp (observations come from the sync)")
            cameras[cam.name] = float(stamps[cam.name])
        self._sequence += 1
        msg = encode_inference_request(self.transport.new_message, observation.stamp, self._sequence, cameras,
                                       self.embodiment.state_names, observation.state, observation.instruction,
                                       prefix)
        with self._cond:
            self._waiting, self._answer = float(observation.stamp), None
            self._publisher.publish(msg)
            answered = self._cond.wait_for(lambda: self._answer is not None, self.timeout)
            answer, self._waiting, self._answer = self._answer, None, None
        if not answered:
            raise RemoteInferenceError(f"no chunk from the inference server on {self.chunk_topic} within "
                                       f"{self.timeout:.1f} s (is vla_inference_server running and reachable?)")
        if isinstance(answer, MessageError):
            raise RemoteInferenceError(f"the inference server's answer is not a chunk: {answer}")
        return answer

    def _on_chunk(self, msg: Any) -> None:
        try:
            answer: ActionChunk | MessageError = decode_action_chunk(msg)
            stamp = answer.stamp
        except MessageError as error:
            answer, stamp = error, None
        with self._cond:
            waiting = self._waiting
            if waiting is None or (stamp is not None and abs(stamp - waiting) > STAMP_TOLERANCE):
                return  # an answer to an observation given up on, or to another node: not ours
            self._answer = answer
            self._cond.notify_all()

    def close(self) -> None:
        self._subscription.close()
