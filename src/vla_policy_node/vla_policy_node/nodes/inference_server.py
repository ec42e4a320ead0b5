"""vla_inference_server: the model on its own machine (a GPU box), answering a policy node's requests over DDS.

    python -m vla_policy_node.nodes.inference_server --transport dds --robot-config config/robots/franka_fr3.yaml \\
        --checkpoint DIR --device cuda
    policy_node ... --inference remote        (on the robot PC, next to the arm)

Subscribes to the robot's camera topics (keeping the last `--frame-window` seconds of frames, as views of the
received messages) and to /vla/inference/request; for each request it takes the frames with the requested
stamps (waiting up to `--frame-wait` for a frame still on its way), runs the model and publishes the chunk on
/vla/inference/chunk (see inference/remote.py). One inference at a time; a newer request replaces one
still waiting. A request it cannot serve (a frame that never came, a model exception) is logged and left
unanswered: the policy node holds on its timeout and says so.
"""

from __future__ import annotations

import bisect
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from vla_policy_node.inference.remote import CHUNK_TOPIC, REQUEST_TOPIC, STAMP_TOLERANCE
from vla_policy_node.msgs.chunks import ACTION_CHUNK, encode_action_chunk
from vla_policy_node.msgs.errors import MessageErrorCounter
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE, decode_compressed_image, decode_image
from vla_policy_node.msgs.inference import INFERENCE_REQUEST, InferenceRequestData, decode_inference_request
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.nodes.node_support import console_main, declare_parameters, serve
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.spec.embodiment import ConfigError, Embodiment
from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.robot_configs import ROBOT_CONFIG_HELP, load_robot
from vla_policy_node.spec.types import Observation
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args
from vla_policy_node.transport.qos import DEFAULT_QOS, SENSOR_DATA_QOS
from vla_policy_node.transport.threads import join_started

log = logging.getLogger("inference_server")
PROGRAM = "vla_inference_server"


class _Frames:
    """The last `window` seconds of one camera's frames, found by stamp."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._stamps: deque[float] = deque()
        self._frames: deque[np.ndarray] = deque()

    def add(self, stamp: float, frame: np.ndarray) -> None:
        self._stamps.append(stamp)
        self._frames.append(frame)
        while self._stamps and self._stamps[0] < stamp - self.window:
            self._stamps.popleft()
            self._frames.popleft()

    def get(self, stamp: float) -> np.ndarray | None:
        stamps = list(self._stamps)
        i = bisect.bisect_left(stamps, stamp - STAMP_TOLERANCE)
        if i < len(stamps) and abs(stamps[i] - stamp) <= STAMP_TOLERANCE:
            return self._frames[i]
        return None


class InferenceServer:
    def __init__(self, transport: Transport, embodiment: Embodiment, policy: Any, *, frame_window: float = 2.0,
                 frame_wait: float = 0.2, request_topic: str = REQUEST_TOPIC, chunk_topic: str = CHUNK_TOPIC) -> None:
        self.transport = transport
        self.embodiment = embodiment
        self.policy = policy
        self.frame_wait = frame_wait
        self.errors = MessageErrorCounter()
        self.served = 0
        self.failed = 0
        self._cameras = {c.name: c for c in embodiment.cameras}
        self._frames = {c.name: _Frames(frame_window) for c in embodiment.cameras}
        self._cond = threading.Condition()
        self._pending: InferenceRequestData | None = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._chunks = transport.publisher(chunk_topic, ACTION_CHUNK, DEFAULT_QOS)
        self._subscriptions = [
            transport.subscribe(c.topic, COMPRESSED_IMAGE if c.compressed else IMAGE, self._on_image(c.name),
                                SENSOR_DATA_QOS)
            for c in embodiment.cameras
        ]
        self._subscriptions.append(transport.subscribe(request_topic, INFERENCE_REQUEST, self._on_request,
                                                       DEFAULT_QOS))

    def _on_image(self, name: str):
        camera = self._cameras[name]
        decoder = decode_compressed_image if camera.compressed else partial(decode_image, copy=False)

        def on_image(msg: Any) -> None:
            frame = self.errors.decode(decoder, msg, topic=camera.topic)
            if frame is not None:
                with self._cond:
                    self._frames[name].add(header_stamp(msg), frame)
                    self._cond.notify_all()

        return on_image

    def _on_request(self, msg: Any) -> None:
        request = self.errors.decode(decode_inference_request, msg, topic=REQUEST_TOPIC)
        if request is None:
            return
        with self._cond:
            self._pending = request  # a newer request replaces one still waiting
            self._cond.notify_all()

    def serve_one(self, request: InferenceRequestData) -> bool:
        """Answer one request (the worker's step; tests call it directly). False if it could not be served."""
        deadline = time.monotonic() + self.frame_wait
        frames: dict[str, np.ndarray] = {}
        with self._cond:
            while True:
                missing = [n for n in self._cameras if n not in frames]
                for name in missing:
                    stamp = request.camera_stamps.get(name)
                    frame = None if stamp is None else self._frames[name].get(stamp)
                    if frame is not None:
                        frames[name] = frame
                missing = [n for n in self._cameras if n not in frames]
                if not missing or not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    break
        if missing:
            log.warning("request %d: no frame of %s with the requested stamp within %.2f s", request.sequence,
                        missing, self.frame_wait)
            self.failed += 1
            return False
        if request.state_names != self.embodiment.state_names:
            log.warning("request %d: state names %s, this server's robot has %s", request.sequence,
                        list(request.state_names), list(self.embodiment.state_names))
            self.failed += 1
            return False
        obs = Observation(request.stamp, FittedImages(frames, self._cameras), request.state, request.instruction,
                          {"stamps": dict(request.camera_stamps), "sequence": request.sequence})
        start = time.perf_counter()
        try:
            chunk = self.policy.infer(obs, prefix=request.prefix)
        except Exception as error:  # logged and unanswered: the policy node holds on its timeout
            log.error("request %d: model raised %s: %s", request.sequence, type(error).__name__, error)
            self.failed += 1
            return False
        latency = time.perf_counter() - start
        self._chunks.publish(encode_action_chunk(self.transport.new_message, chunk,
                                                 frame_id=self.embodiment.action_space.frame,
                                                 inference_latency=latency))
        self.served += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop.is_set(), 0.5)
                request, self._pending = self._pending, None
            if request is not None:
                self.serve_one(request)

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="vla-inference-server", daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        join_started(self._worker, 5.0)
        for subscription in self._subscriptions:
            subscription.close()


def run(argv: Sequence[str]) -> int:
    from vla_policy_node.inference.process import warm_up
    from vla_policy_node.nodes.policy_node import load_policy

    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="auto: rclpy when it is importable, else DDS")
    parser.add_argument("--robot-config", dest="robot_config", default="", help=ROBOT_CONFIG_HELP)
    parser.add_argument("--checkpoint", default="", help="checkpoint directory or model-hub id")
    parser.add_argument("--device", default="cuda", help="torch device: cuda, cuda:N, cpu")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the flow-matching head")
    parser.add_argument("--torch-threads", dest="torch_threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--frame-window", dest="frame_window", type=float, default=2.0,
                        help="seconds of camera frames kept for requests to pick from")
    parser.add_argument("--frame-wait", dest="frame_wait", type=float, default=0.2,
                        help="seconds a request may wait for a frame still on its way")
    parser.add_argument("--node-name", dest="node_name", default="vla_inference", help="ROS node name")
    parser.add_argument("--log-level", dest="log_level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(strip_ros_args(argv))
    logging.getLogger().setLevel(args.log_level.upper())
    transport = make_transport(args.transport, args.node_name, argv, PROGRAM)
    try:
        settings = declare_parameters(transport, {"robot_config": args.robot_config, "checkpoint": args.checkpoint,
                                                  "device": args.device, "seed": args.seed,
                                                  "torch_threads": args.torch_threads})
        if not settings["robot_config"] or not settings["checkpoint"]:
            log.error("robot_config and checkpoint are required (--robot-config/--checkpoint or ROS parameters)")
            return 2
        try:
            embodiment = load_robot(settings["robot_config"])
        except ConfigError as error:
            log.error("%s", error)
            return 2
        policy = load_policy(str(settings["checkpoint"]), embodiment, str(settings["device"]),
                             int(settings["seed"]), int(settings["torch_threads"]))
        warm_up(policy, embodiment)
        server = InferenceServer(transport, embodiment, policy, frame_window=args.frame_window,
                                 frame_wait=args.frame_wait)
        return serve(server, log, f"serving {embodiment.name} on {REQUEST_TOPIC} -> {CHUNK_TOPIC}")
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())

