"""RealSense camera node: color and depth aligned to color, under realsense2_camera's topic names.

    /<camera_namespace>/<camera_name>/color/image_raw                     sensor_msgs/Image rgb8
    /<camera_namespace>/<camera_name>/color/camera_info                   sensor_msgs/CameraInfo
    /<camera_namespace>/<camera_name>/aligned_depth_to_color/image_raw    sensor_msgs/Image 16UC1 (mm)
    /<camera_namespace>/<camera_name>/aligned_depth_to_color/camera_info  sensor_msgs/CameraInfo (color's)

Defaults give realsense2_camera's `/camera/camera/...`, so the robot configs' topics work with either node.
It publishes through the Transport interface: over rclpy when started by `ros2 launch`/`ros2 run`
(parameters: serial_no, camera_namespace, camera_name, width, height, fps, enable_depth, depth_width,
depth_height, frame_timeout), or over DDS without ROS (`--transport dds` and the same settings as flags).

No camera, a wrong serial or a camera that stops sending frames ends the node with a RealSenseError
message and exit status 1, never a hang.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vla_policy_node.devices.realsense import RealSenseCamera, RealSenseConfig, RealSenseError, RealSenseFrames
from vla_policy_node.msgs.camera_info import CAMERA_INFO, CameraIntrinsics, encode_camera_info
from vla_policy_node.msgs.fields import MessageFactory
from vla_policy_node.msgs.images import IMAGE, encode_image
from vla_policy_node.nodes.node_support import console_main
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.transport.base import Publisher, Transport
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args, use_rclpy

log = logging.getLogger("realsense_camera")

NODE_NAME = "realsense_camera"
PROGRAM = "realsense_camera_node"


@dataclass(frozen=True)
class CameraTopics:
    """Topic names and the optical frame id of one camera, realsense2_camera style."""

    color_image: str
    color_info: str
    depth_image: str
    depth_info: str
    frame_id: str

    @classmethod
    def for_camera(cls, namespace: str = "camera", name: str = "camera") -> CameraTopics:
        prefix = "/".join(part.strip("/") for part in (namespace, name) if part.strip("/"))
        return cls(
            color_image=f"/{prefix}/color/image_raw",
            color_info=f"/{prefix}/color/camera_info",
            depth_image=f"/{prefix}/aligned_depth_to_color/image_raw",
            depth_info=f"/{prefix}/aligned_depth_to_color/camera_info",
            frame_id=f"{name.strip('/') or 'camera'}_color_optical_frame",
        )


@dataclass(frozen=True)
class CameraNodeSettings:
    camera: RealSenseConfig
    namespace: str = "camera"
    name: str = "camera"

    @property
    def topics(self) -> CameraTopics:
        return CameraTopics.for_camera(self.namespace, self.name)


def frames_to_messages(
    new: MessageFactory, frames: RealSenseFrames, intrinsics: CameraIntrinsics, topics: CameraTopics, stamp: float
) -> list[tuple[str, Any]]:
    """(topic, message) pairs for one frame set; aligned depth shares the color stream's frame and intrinsics."""
    out = [
        (topics.color_image, encode_image(new, frames.color, "rgb8", stamp=stamp, frame_id=topics.frame_id)),
        (topics.color_info, encode_camera_info(new, intrinsics, stamp=stamp, frame_id=topics.frame_id)),
    ]
    if frames.depth is not None:
        depth = encode_image(new, frames.depth, "16UC1", stamp=stamp, frame_id=topics.frame_id)
        out.append((topics.depth_image, depth))
        out.append((topics.depth_info, encode_camera_info(new, intrinsics, stamp=stamp, frame_id=topics.frame_id)))
    return out


class RealSenseCameraNode:
    """Reads frame sets from a started camera and publishes them until `stop` is set or the camera fails."""

    def __init__(self, transport: Transport, camera: RealSenseCamera, topics: CameraTopics) -> None:
        if camera.intrinsics is None:
            raise RealSenseError("camera not started; call start() before creating the node")
        self.transport = transport
        self.camera = camera
        self.intrinsics = camera.intrinsics
        self.topics = topics
        self.published = 0
        self._publishers: dict[str, Publisher] = {
            topics.color_image: transport.publisher(topics.color_image, IMAGE),
            topics.color_info: transport.publisher(topics.color_info, CAMERA_INFO),
        }
        if camera.config.enable_depth:
            self._publishers[topics.depth_image] = transport.publisher(topics.depth_image, IMAGE)
            self._publishers[topics.depth_info] = transport.publisher(topics.depth_info, CAMERA_INFO)

    def publish(self, frames: RealSenseFrames) -> None:
        stamp = frames.stamp if frames.stamp is not None else self.transport.now()
        for topic, msg in frames_to_messages(self.transport.new_message, frames, self.intrinsics, self.topics, stamp):
            self._publishers[topic].publish(msg)
        self.published += 1

    def spin(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.publish(self.camera.read())


# ----------------------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    defaults = RealSenseConfig()
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="auto: rclpy when it is importable, else DDS (cyclonedds) without ROS")
    parser.add_argument("--serial-no", default=defaults.serial_no, help="camera serial; empty: the first camera")
    parser.add_argument("--camera-namespace", default="camera", help="topic namespace (realsense2_camera's)")
    parser.add_argument("--camera-name", default="camera", help="camera name under the namespace (topics /NS/NAME/...)")
    parser.add_argument("--width", type=int, default=defaults.width, help="color image width (px)")
    parser.add_argument("--height", type=int, default=defaults.height, help="color image height (px)")
    parser.add_argument("--fps", type=int, default=defaults.fps, help="frame rate")
    parser.add_argument("--depth-width", type=int, default=defaults.depth_width, help="0: device default")
    parser.add_argument("--depth-height", type=int, default=defaults.depth_height, help="0: device default")
    parser.add_argument("--no-depth", dest="enable_depth", action="store_false", help="color only")
    parser.add_argument("--frame-timeout", type=float, default=defaults.frame_timeout,
                        help="seconds without frames before the node gives up")
    return parser.parse_args(list(argv))


def settings_from_args(args: argparse.Namespace) -> CameraNodeSettings:
    camera = RealSenseConfig(serial_no=args.serial_no, width=args.width, height=args.height, fps=args.fps,
                             enable_depth=args.enable_depth, depth_width=args.depth_width,
                             depth_height=args.depth_height, frame_timeout=args.frame_timeout)
    return CameraNodeSettings(camera, args.camera_namespace, args.camera_name)


def settings_from_ros_parameters(node: Any, fallback: CameraNodeSettings) -> CameraNodeSettings:
    """Declare the node's ROS parameters (defaults from the command line) and read them."""
    from rcl_interfaces.msg import ParameterDescriptor

    cam = fallback.camera
    # serial numbers are digits: a YAML/launch value arrives as int unless quoted, so accept any type
    serial = node.declare_parameter("serial_no", cam.serial_no, ParameterDescriptor(dynamic_typing=True)).value
    values = {
        name: node.declare_parameter(name, default).value
        for name, default in (
            ("camera_namespace", fallback.namespace), ("camera_name", fallback.name), ("width", cam.width),
            ("height", cam.height), ("fps", cam.fps), ("enable_depth", cam.enable_depth),
            ("depth_width", cam.depth_width), ("depth_height", cam.depth_height),
            ("frame_timeout", cam.frame_timeout),
        )
    }
    camera = RealSenseConfig(
        serial_no="" if serial is None else str(serial), width=int(values["width"]), height=int(values["height"]),
        fps=int(values["fps"]), enable_depth=bool(values["enable_depth"]), depth_width=int(values["depth_width"]),
        depth_height=int(values["depth_height"]), frame_timeout=float(values["frame_timeout"]),
    )
    return CameraNodeSettings(camera, str(values["camera_namespace"]), str(values["camera_name"]))


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    settings = settings_from_args(args)
    transport: Transport | None = None
    camera: RealSenseCamera | None = None
    try:
        if use_rclpy(args.transport):
            transport = make_transport("rclpy", NODE_NAME, argv, PROGRAM)
            settings = settings_from_ros_parameters(transport.node, settings)  # type: ignore[attr-defined]
            camera = RealSenseCamera(settings.camera)
            camera.start()
        else:
            camera = RealSenseCamera(settings.camera)
            camera.start()  # before joining DDS: no participant appears for a camera that is not there
            transport = make_transport("dds", NODE_NAME, argv, PROGRAM)
        node = RealSenseCameraNode(transport, camera, settings.topics)
        assert camera.intrinsics is not None
        intr = camera.intrinsics
        log.info("RealSense %s streaming %dx%d@%d%s on %s", camera.serial_no, intr.width, intr.height,
                 settings.camera.fps, " + aligned depth" if settings.camera.enable_depth else "",
                 settings.topics.color_image)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        node.spin(stop)
        return 0
    except RealSenseError as error:
        log.error("RealSenseError: %s", error)
        return 1
    finally:
        if camera is not None:
            camera.stop()
        if transport is not None:
            transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
