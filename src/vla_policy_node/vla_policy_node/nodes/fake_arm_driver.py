"""fake_arm_driver: a stand-in for an arm's driver, controllers and cameras, for tests and dry runs without
hardware or a simulator.

    python -m vla_policy_node.nodes.fake_arm_driver --transport dds --robot-config config/robots/sim_arm.yaml

- listens on the robot YAML's controller topic (joint_trajectory: the last point of each trajectory is the
  target; forward_command: the array is) and on a forward_command gripper topic;
- tracks the target to first order (time constant `tau`), clamped to the joint limits, and publishes the
  joints (+ gripper) on the joint_states topic at `joint_rate`;
- Cartesian controllers as a fake MoveIt Servo (kinematics/servo.py on the chain URDF below): servo_twist
  (TwistStamped in the action frame) moves the tool at that twist, servo_pose (PoseStamped) towards that pose at
  the action space's speeds; joint velocities within their limits, positions within the range; a twist older
  than `servo_timeout` stops the arm, as Servo's incoming command timeout does;
- publishes every camera of the YAML (Image rgb8, or CompressedImage jpeg when `compressed`) at the camera
  resolution and `camera_rate`: a gradient with a block that moves with the first joint, so the policy sees
  the arm move;
- publishes a serial-chain URDF of the robot's joints on /robot_description (latched), like a
  robot_state_publisher would, so the policy node can draw its predicted path;
- `~/cameras_enabled` (std_msgs/Bool, latched) switches the camera streams off and on (a camera failure);
- `~/sensor_fault` (std_msgs/String, latched: a JSON `SensorFault`, "{}" = healthy) makes the sensors lie the
  way real ones do: streams that stop, readings replaced (NaN, 1e9, past a limit) or offset (a jump), stamps
  from a wrong clock. `--sensor-fault JSON` starts with one. The arm itself keeps following its commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from vla_policy_node.kinematics.rotation import rpy_matrix
from vla_policy_node.kinematics.servo import DifferentialIK
from vla_policy_node.kinematics.urdf import parse_urdf
from vla_policy_node.msgs.commands import CONTROLLER_MSGTYPES, decode_command
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.images import encode_compressed_image, encode_image
from vla_policy_node.msgs.joints import FLOAT64_ARRAY, JOINT_STATE, decode_float64_array, encode_joint_state
from vla_policy_node.nodes.node_support import (
    BOOL,
    STRING,
    console_main,
    driver_parser,
    driver_summary,
    node_clock,
    serve,
)
from vla_policy_node.nodes.timing import Ticker, follows_sim_clock, make_ticker
from vla_policy_node.spec.embodiment import CameraSpec, ConfigError, Embodiment
from vla_policy_node.spec.robot_configs import load_robot
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.factory import make_transport, strip_ros_args
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, QosProfile

log = logging.getLogger("fake_arm_driver")

PROGRAM = "fake_arm_driver"
NODE_NAME = "fake_arm_driver"
COMMAND_QOS = QosProfile(depth=100)  # reliable, deep: a test reading every command must not lose one
SERVO_INTERFACES = ("servo_twist", "servo_pose")


def tool_link(embodiment: Embodiment) -> str:
    """The chain's tool link: the Cartesian action space's ee_link (so the policy finds it), else `tool`."""
    return embodiment.action_space.ee_link if embodiment.action_space.cartesian else "tool"


def chain_urdf(embodiment: Embodiment, link_length: float = 0.1) -> str:
    """A serial chain of the robot's joints (axes alternating z, y), a fixed tool link (`tool_link`), and the
    gripper as a prismatic finger: enough kinematics for path markers, ghosts and a fake Servo of robots without
    a description."""
    base = embodiment.base_frame
    parts = [f'<robot name="{embodiment.name}_chain">', f'<link name="{base}"/>']
    parent = base
    for i, joint in enumerate(embodiment.joints):
        child = f"link{i + 1}"
        axis = "0 0 1" if i % 2 == 0 else "0 1 0"
        parts += [f'<link name="{child}"/>',
                  f'<joint name="{joint.name}" type="revolute"><parent link="{parent}"/><child link="{child}"/>'
                  f'<origin xyz="0 0 {link_length}"/><axis xyz="{axis}"/>'
                  f'<limit lower="{joint.lower}" upper="{joint.upper}" effort="10" velocity="{joint.max_velocity}"/>'
                  "</joint>"]
        parent = child
    tool = tool_link(embodiment)
    parts += [f'<link name="{tool}"/>', f'<joint name="tool_joint" type="fixed"><parent link="{parent}"/>'
              f'<child link="{tool}"/><origin xyz="0 0 {link_length}"/></joint>']
    if embodiment.gripper is not None:
        g = embodiment.gripper
        parts += ['<link name="finger"/>', f'<joint name="{g.name}" type="prismatic"><parent link="{tool}"/>'
                  '<child link="finger"/><axis xyz="0 1 0"/>'
                  f'<limit lower="{g.lower}" upper="{g.upper}" effort="10" velocity="{g.max_velocity}"/></joint>']
    parts.append("</robot>")
    return "".join(parts)


def camera_frame(camera: CameraSpec, shift: float, tick: int) -> np.ndarray:
    """HxWx3 RGB: a fixed gradient, a block whose column follows `shift` (radians), a pixel that counts."""
    h, w = camera.height, camera.width
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), np.full_like(x, 96)], axis=-1)
    img = img.astype(np.uint8)
    size = max(2, w // 8)
    col = int((0.5 + 0.15 * math.sin(shift)) * (w - size))
    img[h // 2 - size // 2: h // 2 + size // 2, col: col + size] = (230, 40, 40)
    img[0, 0] = (tick % 256, 0, 0)
    return img


@dataclass(frozen=True)
class SensorFault:
    """What the fake arm's sensors get wrong (the default: nothing). Joint names are the robot's state names.

    joint_states / cameras: False stops that stream (a dropout). readings: name -> the value reported instead
    of the true one. offsets: name -> added to the true value (a jump when it starts or ends).
    joint_stamp_offset / camera_stamp_offset: seconds added to the stamps (a driver clock ahead or behind)."""

    joint_states: bool = True
    cameras: bool = True
    readings: dict[str, float] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    joint_stamp_offset: float = 0.0
    camera_stamp_offset: float = 0.0

    @classmethod
    def from_json(cls, text: str, names: Sequence[str]) -> SensorFault:
        """Parse and check (ValueError naming the problem); JSON's NaN/Infinity literals are allowed."""
        data = json.loads(text or "{}")
        if not isinstance(data, dict):
            raise ValueError("a sensor fault is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sensor fault key(s) {unknown}; known: {sorted(known)}")
        for key in ("readings", "offsets"):
            if not isinstance(data.get(key, {}), dict):
                raise ValueError(f"{key} maps joint names to values")
            bad = sorted(set(data.get(key, {})) - set(names))
            if bad:
                raise ValueError(f"{key}: unknown joint(s) {bad}; joints: {list(names)}")
            data[key] = {name: float(value) for name, value in data.get(key, {}).items()}
        return cls(**data)

    def apply(self, names: Sequence[str], positions: np.ndarray) -> np.ndarray:
        out = positions.copy()
        for i, name in enumerate(names):
            out[i] = self.readings.get(name, out[i] + self.offsets.get(name, 0.0))
        return out


@dataclass(frozen=True)
class FakeArmParams:
    joint_rate: float = 100.0
    camera_rate: float = 30.0
    tau: float = 0.05
    initial: tuple[float, ...] | None = None  # arm (+ gripper) positions; None: mid-range, gripper open
    publish_description: bool = True
    servo_timeout: float = 0.1  # s: MoveIt Servo's incoming_command_timeout (a servo_twist/_pose robot stops)
    pose_gain: float = 5.0  # 1/s: servo_pose closes the pose error at this rate (capped at the speed limits)
    sensor_fault: str = ""  # a SensorFault as JSON, in effect from the start


class FakeArm:
    def __init__(self, transport: Transport, embodiment: Embodiment, params: FakeArmParams | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        interface = embodiment.controller.interface
        if interface not in CONTROLLER_MSGTYPES:
            raise ConfigError(f"the fake arm has no {interface!r} controller")
        self.transport = transport
        self.embodiment = embodiment
        self.params = params = params or FakeArmParams()
        self.clock = clock or transport.now
        self.interface = interface
        self.names = embodiment.state_names
        n = len(embodiment.joints)
        self.lower = np.array([j.lower for j in embodiment.joints] + ([embodiment.gripper.lower]
                                                                       if embodiment.gripper else []))
        self.upper = np.array([j.upper for j in embodiment.joints] + ([embodiment.gripper.upper]
                                                                       if embodiment.gripper else []))
        if params.initial is not None:
            if len(params.initial) != len(self.names):
                raise ValueError(f"initial needs {len(self.names)} values {self.names}")
            q = np.clip(np.array(params.initial, dtype=np.float64), self.lower, self.upper)
        else:
            q = (self.lower + self.upper) / 2
            if interface in SERVO_INTERFACES:  # a bent arm: the straight chain is singular (no motion along it)
                q[1:n:2] = np.clip(q[1:n:2] + 0.5, self.lower[1:n:2], self.upper[1:n:2])
            if embodiment.gripper is not None:
                q[n] = embodiment.gripper.upper
        self.positions = q
        self.servo: DifferentialIK | None = None
        self._servo_command: tuple[float, np.ndarray] | None = None  # (arrival, twist or [x y z r p y])
        if interface in SERVO_INTERFACES:
            chain = parse_urdf(chain_urdf(embodiment)).chain(embodiment.base_frame, tool_link(embodiment))
            self.servo = DifferentialIK(chain, embodiment.joint_names,
                                        np.array([j.max_velocity for j in embodiment.joints]))
        self.velocities = np.zeros_like(q)
        self.target = q.copy()
        self.cameras_enabled = True
        self.fault = SensorFault.from_json(params.sensor_fault, self.names)
        self.errors = MessageErrorCounter()
        self.commands_received = 0
        self._n = n
        self._lock = threading.Lock()
        self._last_step: float | None = None
        self._frames = 0
        self._joint_pub = transport.publisher(embodiment.joint_states.topic, JOINT_STATE, DEFAULT_QOS)
        self._camera_pubs = [
            (cam, transport.publisher(cam.topic, "sensor_msgs/msg/CompressedImage" if cam.compressed
                                      else "sensor_msgs/msg/Image", DEFAULT_QOS))
            for cam in embodiment.cameras
        ]
        self._subscriptions = [
            transport.subscribe(embodiment.controller.topic, CONTROLLER_MSGTYPES[interface], self.on_command,
                                COMMAND_QOS),
            transport.subscribe("~/cameras_enabled", BOOL, self.on_cameras_enabled, LATCHED_QOS),
            transport.subscribe("~/sensor_fault", STRING, self.on_sensor_fault, LATCHED_QOS),
        ]
        gripper = embodiment.gripper
        if gripper is not None and gripper.interface == "forward_command":
            self._subscriptions.append(transport.subscribe(gripper.topic, FLOAT64_ARRAY, self.on_gripper,
                                                           COMMAND_QOS))
        self._description_pub = None
        if params.publish_description:
            self._description_pub = transport.publisher("/robot_description", STRING, LATCHED_QOS)
            self._description_pub.publish(transport.new_message(STRING, data=chain_urdf(embodiment)))
        self._tickers: list[Ticker] = []

    def on_command(self, msg: Any) -> None:
        try:
            arm = decode_command(msg, self.interface, self.embodiment.joint_names)
        except MessageError as error:
            self.errors.record(error, self.embodiment.controller.topic)
            return
        if self.servo is not None:
            if not np.all(np.isfinite(arm)):
                self.errors.record(MessageError("nonfinite", "non-finite servo command", CONTROLLER_MSGTYPES[
                    self.interface]), self.embodiment.controller.topic)
                return
            with self._lock:
                self._servo_command = (self.clock(), np.asarray(arm, dtype=np.float64))
                self.commands_received += 1
            return
        if self.interface == "joint_trajectory":
            last = msg.points[-1].positions  # the goal of the trajectory; decode_command gave its first point
            names = list(msg.joint_names)
            arm = np.array([float(last[names.index(name)]) for name in self.embodiment.joint_names])
        with self._lock:
            self.target[: self._n] = arm
            self.commands_received += 1

    def _servo_velocity(self, q: np.ndarray, now: float) -> np.ndarray:
        """Joint velocities of the fake Servo for the newest command (zero once it is older than the timeout)."""
        command = self._servo_command
        assert self.servo is not None
        if command is None or now - command[0] > self.params.servo_timeout:
            return np.zeros_like(q)
        space = self.embodiment.action_space
        if self.interface == "servo_twist":
            twist = command[1]
        else:
            target = np.eye(4)
            target[:3, :3] = rpy_matrix(*command[1][3:6])
            target[:3, 3] = command[1][:3]
            twist = self.servo.twist_to(q, target, self.params.pose_gain, space.max_linear_speed,
                                        space.max_angular_speed)
        return self.servo.joint_velocity(q, twist)

    def on_gripper(self, msg: Any) -> None:
        try:
            value = decode_float64_array(msg, expected_size=1)
        except MessageError as error:
            self.errors.record(error, "gripper")
            return
        with self._lock:
            self.target[self._n] = float(value[0])

    def on_cameras_enabled(self, msg: Any) -> None:
        self.cameras_enabled = bool(msg.data)
        log.info("cameras %s", "on" if self.cameras_enabled else "off")

    def on_sensor_fault(self, msg: Any) -> None:
        try:
            self.fault = SensorFault.from_json(str(msg.data), self.names)
        except ValueError as error:
            self.errors.record(MessageError("bad_sensor_fault", str(error), STRING), "~/sensor_fault")
            log.error("sensor fault ignored: %s", error)
            return
        log.info("sensor fault: %s", self.fault)

    def joint_step(self) -> None:
        """Track the target for the time since the last step and publish the joint state."""
        now = self.clock()
        with self._lock:
            dt = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
            self._last_step = now
            target = np.clip(self.target, self.lower, self.upper)
            previous = self.positions.copy()
            self.positions = target + (self.positions - target) * math.exp(-dt / self.params.tau)
            if self.servo is not None:
                n = self._n
                self.positions[:n] = np.clip(previous[:n] + self._servo_velocity(previous[:n], now) * dt,
                                             self.lower[:n], self.upper[:n])
            self.velocities = (self.positions - previous) / dt if dt > 0 else np.zeros_like(previous)
            positions, velocities = self.positions.copy(), self.velocities.copy()
        fault = self.fault
        if not fault.joint_states:
            return
        self._joint_pub.publish(encode_joint_state(self.transport.new_message, self.names,
                                                   fault.apply(self.names, positions), velocities,
                                                   stamp=now + fault.joint_stamp_offset))

    def camera_step(self) -> None:
        fault = self.fault
        if not (self.cameras_enabled and fault.cameras):
            return
        now = self.clock() + fault.camera_stamp_offset
        shift = float(self.positions[0])
        self._frames += 1
        new = self.transport.new_message
        for cam, publisher in self._camera_pubs:
            rgb = camera_frame(cam, shift, self._frames)
            if cam.compressed:
                publisher.publish(encode_compressed_image(new, rgb, "jpeg", stamp=now, frame_id=f"{cam.name}_optical"))
            else:
                publisher.publish(encode_image(new, rgb, "rgb8", stamp=now, frame_id=f"{cam.name}_optical"))

    def start(self) -> None:
        # threads of their own on wall time (as the nodes' control timers: rclpy's executor delays a 250 Hz timer
        # by milliseconds), node timers that /clock drives on sim time
        own = not follows_sim_clock(self.transport)
        self._tickers = [
            make_ticker(self.transport, 1.0 / self.params.joint_rate, self.joint_step, "fake-arm-joints",
                        own_thread=own),
            make_ticker(self.transport, 1.0 / self.params.camera_rate, self.camera_step, "fake-arm-cameras",
                        own_thread=own),
        ]
        for ticker in self._tickers:
            ticker.start()

    def close(self) -> None:
        for ticker in self._tickers:
            ticker.stop()
        for subscription in self._subscriptions:
            subscription.close()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = driver_parser(PROGRAM, __doc__.split("\n\n")[0], camera_rate=30.0)
    parser.add_argument("--tau", type=float, default=0.05, help="first-order tracking time constant (s)")
    parser.add_argument("--initial", type=float, nargs="+", help="initial joint (+ gripper) positions")
    parser.add_argument("--no-description", dest="description", action="store_false",
                        help="do not publish the chain URDF on /robot_description")
    parser.add_argument("--sensor-fault", dest="sensor_fault", default="",
                        help="start with this SensorFault (JSON, see ~/sensor_fault), e.g. a gripper reading")
    parser.add_argument("--use-sim-time", dest="use_sim_time", action="store_true",
                        help="DDS transport: stamp with /clock time (under rclpy, set the use_sim_time parameter)")
    parser.add_argument("--node-name", dest="node_name", default=NODE_NAME, help="ROS node name")
    return parser.parse_args(list(argv))


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    try:
        embodiment = load_robot(args.robot_config)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    params = FakeArmParams(args.joint_rate, args.camera_rate, args.tau,
                           tuple(args.initial) if args.initial else None, args.description, args.sensor_fault)
    try:
        SensorFault.from_json(args.sensor_fault, embodiment.state_names)
    except ValueError as error:
        log.error("--sensor-fault: %s", error)
        return 2
    transport = make_transport(args.transport, args.node_name, argv, PROGRAM)
    try:
        arm = FakeArm(transport, embodiment, params, node_clock(transport, args.use_sim_time))
        return serve(arm, log, driver_summary(embodiment))
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
