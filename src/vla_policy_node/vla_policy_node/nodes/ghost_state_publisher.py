"""Ghost of the predicted robot state for rviz: TF frames `<tf_prefix>/<link>` from predicted joint states.

rviz draws the ghost with a second RobotModel display whose "TF Prefix" is `tf_prefix` (default `predicted`),
reading the same /robot_description as the real robot. This node is that display's robot_state_publisher:
robot_state_publisher itself only takes the URDF as a launch-time parameter, and the robot drivers' xacros
need robot-specific arguments, so instead this node reads the live, latched /robot_description that the
driver already publishes and needs no URDF of its own.

In:  /robot_description (std_msgs/String, latched), /vla/predicted_joint_states (sensor_msgs/JointState)
Out: /tf (tf2_msgs/TFMessage): `<root>` -> `<tf_prefix>/<root>` (identity, so the ghost shares the robot's base)
     and `<tf_prefix>/<parent>` -> `<tf_prefix>/<child>` for every joint; joints the prediction does not name sit
     at 0, mimic joints follow their master.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_policy_node.kinematics.urdf import UrdfError, UrdfModel, parse_urdf
from vla_policy_node.msgs.joints import JOINT_STATE, decode_joint_state
from vla_policy_node.msgs.tf import TF_MESSAGE, encode_tf_message
from vla_policy_node.nodes.node_support import console_main
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS

log = logging.getLogger("ghost_state_publisher")

NODE_NAME = "ghost_state_publisher"
PROGRAM = "ghost_state_publisher"
STRING = "std_msgs/msg/String"
DEFAULTS = {
    "tf_prefix": "predicted",
    "description_topic": "/robot_description",
    "joint_states_topic": "/vla/predicted_joint_states",
}


class GhostStatePublisher:
    def __init__(self, transport: Transport, tf_prefix: str = DEFAULTS["tf_prefix"],
                 description_topic: str = DEFAULTS["description_topic"],
                 joint_states_topic: str = DEFAULTS["joint_states_topic"]) -> None:
        prefix = tf_prefix.strip("/")
        if not prefix:
            raise ValueError("tf_prefix must not be empty: the ghost's frames would replace the robot's own")
        self.transport = transport
        self.prefix = prefix
        self.model: UrdfModel | None = None
        self.published = 0
        self._lock = threading.Lock()
        self._tf = transport.publisher("/tf", TF_MESSAGE, DEFAULT_QOS)
        self._subscriptions = [
            transport.subscribe(description_topic, STRING, self.on_description, LATCHED_QOS),
            transport.subscribe(joint_states_topic, JOINT_STATE, self.on_joint_state, DEFAULT_QOS),
        ]

    def frame(self, link: str) -> str:
        return f"{self.prefix}/{link}"

    def on_description(self, msg: Any) -> None:
        try:
            model = parse_urdf(str(msg.data))
        except UrdfError as error:
            log.error("ignoring robot description: %s", error)
            return
        with self._lock:
            self.model = model
        log.info("robot description %r: %d links, ghost frames under %s/", model.name, len(model.links), self.prefix)

    def on_joint_state(self, msg: Any) -> None:
        with self._lock:
            model = self.model
        if model is None:
            return  # no description yet: nothing to place the ghost's links with
        state = decode_joint_state(msg)
        positions = dict(zip(state.names, state.positions.tolist(), strict=True))
        transforms: list[tuple[str, str, np.ndarray]] = [(model.root, self.frame(model.root), np.eye(4))]
        transforms += [(self.frame(joint.parent), self.frame(joint.child), matrix)
                       for joint, matrix in model.link_transforms(positions)]
        self._tf.publish(encode_tf_message(self.transport.new_message, transforms, self.transport.now()))
        self.published += 1

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="rclpy under ROS 2, DDS (cyclonedds) without it; auto picks")
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default,
                            help=f"{name.replace('_', ' ')} (ROS parameter {name})")
    return parser.parse_args(list(argv))


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    settings = {name: getattr(args, name) for name in DEFAULTS}
    transport = make_transport(args.transport, NODE_NAME, argv, PROGRAM)
    try:
        node = getattr(transport, "node", None)
        if node is not None:  # rclpy: ROS parameters override the command line
            settings = {name: str(node.declare_parameter(name, value).value) for name, value in settings.items()}
        ghost = GhostStatePublisher(transport, **settings)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        ghost.close()
        return 0
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
