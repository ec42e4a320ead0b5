"""Child process for the multi-process DDS test: a ROS-like node that publishes sensors and awaits a command.

Publishes sensor_msgs/JointState on /peer/joint_states and a 640x480 rgb8 Image on /peer/image every 50 ms
until a std_msgs/Float64MultiArray arrives on /peer/command; then prints {"command": [...]} as one JSON line
and exits 0. Exits 2 if nothing arrives within --timeout seconds (the test's bound).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np

JOINT_NAMES = ["shoulder", "elbow", "wrist"]
JOINT_POSITIONS = [0.25, -1.5, 3.0]


def image_pattern(height: int = 480, width: int = 640) -> np.ndarray:
    y, x, c = np.mgrid[0:height, 0:width, 0:3]
    return ((x * 7 + y * 3 + c * 50) % 256).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    from vla_policy_node.msgs import decode_float64_array, encode_image, encode_joint_state
    from vla_policy_node.transport import DdsConfig, DdsTransport

    transport = DdsTransport(DdsConfig(node_name="vla_test_peer", loopback=True, domain_id=args.domain))
    received: list[list[float]] = []
    done = threading.Event()

    def on_command(msg) -> None:
        received.append(decode_float64_array(msg).tolist())
        done.set()

    try:
        transport.subscribe("/peer/command", "std_msgs/msg/Float64MultiArray", on_command)
        joints = transport.publisher("/peer/joint_states", "sensor_msgs/msg/JointState")
        image = transport.publisher("/peer/image", "sensor_msgs/msg/Image")
        rgb = image_pattern()
        deadline = time.monotonic() + args.timeout
        while not done.is_set() and time.monotonic() < deadline:
            now = transport.now()
            joints.publish(encode_joint_state(transport.new_message, JOINT_NAMES, JOINT_POSITIONS, stamp=now))
            image.publish(encode_image(transport.new_message, rgb, "rgb8", stamp=now, frame_id="peer_camera"))
            done.wait(0.05)
        if not done.is_set():
            return 2
        print(json.dumps({"command": received[0]}), flush=True)
        return 0
    finally:
        transport.close()


if __name__ == "__main__":
    sys.exit(main())
