"""sim_arm_driver: the MuJoCo arm (vla_policy_node.sim) behind the same topics and controllers as a real arm.

    python -m vla_policy_node.nodes.sim_arm_driver --transport dds --robot-config config/robots/sim_arm.yaml

- joint_trajectory controller on the robot YAML's controller topic, as ros2_control's
  joint_trajectory_controller: each trajectory replaces the previous one and is followed from the current
  setpoint, linearly between points by `time_from_start` (counted from reception), then held;
  forward_command: the array is the setpoint. The gripper: Float64MultiArray [opening] on its topic;
- the servos track the setpoint in MuJoCo physics; joint states (+ gripper) at `joint_rate`, every camera
  of the YAML (rgb8, the YAML's resolution, rendered offscreen) at `camera_rate`;
- tasks: std_msgs/UInt32 on `/sim_arm/reset` (a task seed) lays out a new scene and puts the arm at its start
  pose; `/sim_arm/task` (std_msgs/String, JSON) reports seed, instruction, target, distance to the goal, success
  and episode time with every camera frame. `--task` picks the kind: `reach` ("reach the <color> block", the
  tool near the block) or `pick_place` ("put the <color> block on the <color> pad", judged by where the block
  rests: `sim.pick_place`); `/vla/task_done` (std_msgs/Bool) whether the task has succeeded, the success signal of
  the policy node's ExecuteInstruction action. The instruction is only reported: whoever runs the episode gives
  it to the policy (here /vla/instruction, or the action), as an operator would;
- ground truth for training and evaluation only: geometry_msgs/PointStamped on `/sim_arm/target_point`, the
  task's reach point (x, y, z in metres, frame `base_frame`), stamped like and published with every camera
  frame. Recorded demonstrations carry it into datasets as `observation.environment_state` (privileged
  supervision); the policy node never subscribes to it, since a real robot has no such topic. Likewise
  std_msgs/Float64MultiArray on `/sim_arm/task_state`: the task kind's state (reach: the reach point;
  pick_place: the named block's and pad's positions, `TaskKind.state_names`);
- a state name `target_x|y|z` in the YAML's joints (the "target as state" variant,
  `config/sim/sim_arm_target_state.yaml`) is reported in the joint states as the reach point of the task;
  commands for those names are ignored;
- the arm's URDF, generated from the MuJoCo model (`vla_policy_node.sim.description`: root `base_frame`, the YAML's
  joint and gripper names, a `tool` frame at the tool site, target_x|y|z as prismatic joints to a `target`
  link), once on `/robot_description` (std_msgs/String, latched), as a robot_state_publisher would: the policy
  node draws the predicted tool path from it, rviz and the ghost show the arm. `--no-description` (or
  `SimArmParams.publish_description=False`) leaves the topic to someone else.
Time: physics advances to the node clock on every joint tick (wall clock live; a scripted clock in
`step(now)` calls from the in-process evaluation), so the simulation runs at real time under DDS/rclpy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vla_policy_node.msgs.commands import CONTROLLER_MSGTYPES, decode_command
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.geometry import POINT_STAMPED, encode_point_stamped
from vla_policy_node.msgs.images import encode_image
from vla_policy_node.msgs.joints import (
    FLOAT64_ARRAY,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    decode_float64_array,
    decode_joint_trajectory,
    encode_float64_array,
    encode_joint_state,
)
from vla_policy_node.nodes.node_support import BOOL, STRING, console_main, driver_parser, driver_summary, serve
from vla_policy_node.nodes.timing import Ticker, make_ticker
from vla_policy_node.sim.arm import ArmSim
from vla_policy_node.sim.description import TargetJoint, sim_arm_urdf
from vla_policy_node.sim.pick_place import TASK_KINDS, make_task_kind
from vla_policy_node.sim.scene import ARM_JOINTS
from vla_policy_node.sim.tasks import Task, TaskKind
from vla_policy_node.spec.embodiment import ConfigError, Embodiment
from vla_policy_node.spec.robot_configs import load_robot
from vla_policy_node.transport.base import Publisher, Transport
from vla_policy_node.transport.factory import make_transport, strip_ros_args
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, QosProfile

log = logging.getLogger("sim_arm_driver")

PROGRAM = "sim_arm_driver"
NODE_NAME = "sim_arm_driver"
UINT32 = "std_msgs/msg/UInt32"
RESET_TOPIC = "/sim_arm/reset"
TASK_TOPIC = "/sim_arm/task"
TARGET_POINT_TOPIC = "/sim_arm/target_point"
TASK_DONE_TOPIC = "/vla/task_done"
TASK_STATE_TOPIC = "/sim_arm/task_state"
DESCRIPTION_TOPIC = "/robot_description"
TARGET_STATE_NAMES = ("target_x", "target_y", "target_z")
COMMAND_QOS = QosProfile(depth=100)


@dataclass(frozen=True)
class SimArmParams:
    joint_rate: float = 100.0
    camera_rate: float = 10.0
    seed: int = 0  # the task laid out at start
    publish_description: bool = True  # the URDF on /robot_description (off when another node publishes one)
    task: str = "reach"  # the kind of task (sim.pick_place.TASK_KINDS)


class _Trajectory:
    """A joint_trajectory_controller goal: from `start` at `t0`, linearly through `points` at `times`."""

    def __init__(self, t0: float, start: np.ndarray, times: np.ndarray, points: np.ndarray) -> None:
        self.t0, self.times, self.points = t0, np.concatenate([[0.0], times]), np.vstack([start, points])

    def at(self, t: float) -> np.ndarray:
        s = t - self.t0
        if s >= self.times[-1]:
            return self.points[-1]
        k = max(0, int(np.searchsorted(self.times, s, side="right")) - 1)
        a = (s - self.times[k]) / (self.times[k + 1] - self.times[k])
        return self.points[k] + a * (self.points[k + 1] - self.points[k])


class SimArmDriver:
    def __init__(self, transport: Transport, embodiment: Embodiment, params: SimArmParams | None = None,
                 clock: Callable[[], float] | None = None, sampler: TaskKind | None = None) -> None:
        interface = embodiment.controller.interface
        if interface not in ("joint_trajectory", "forward_command"):
            raise ConfigError(f"the simulated arm follows joint commands only, not {interface!r}")
        self.arm_names = tuple(n for n in embodiment.joint_names if n not in TARGET_STATE_NAMES)
        if self.arm_names != ARM_JOINTS:
            raise ConfigError(f"the simulated arm's joints are {ARM_JOINTS}, the config has {self.arm_names}")
        self.transport = transport
        self.embodiment = embodiment
        self.params = params = params or SimArmParams()
        self.clock = clock or transport.now
        self.interface = interface
        self.sampler = sampler or make_task_kind(params.task)
        self.sim = ArmSim({c.name: (c.height, c.width) for c in embodiment.cameras})
        self.errors = MessageErrorCounter()
        self.commands_received = 0
        self.frames = 0
        self.task: Task | None = None
        self.succeeded = False
        self._lock = threading.RLock()
        self._trajectory: _Trajectory | None = None
        self._gripper = 0.0
        self._last_step: float | None = None
        self._episode_start = 0.0
        self._next_frame = 0.0
        self._joint_pub = transport.publisher(embodiment.joint_states.topic, JOINT_STATE, DEFAULT_QOS)
        self._camera_pubs = [(cam, transport.publisher(cam.topic, "sensor_msgs/msg/Image", DEFAULT_QOS))
                             for cam in embodiment.cameras]
        self._task_pub = transport.publisher(TASK_TOPIC, STRING, LATCHED_QOS)
        self._target_pub = transport.publisher(TARGET_POINT_TOPIC, POINT_STAMPED, DEFAULT_QOS)
        self._done_pub = transport.publisher(TASK_DONE_TOPIC, BOOL, DEFAULT_QOS)
        self._task_state_pub = transport.publisher(TASK_STATE_TOPIC, FLOAT64_ARRAY, DEFAULT_QOS)
        self._description_pub: Publisher | None = None
        if params.publish_description:
            self._description_pub = transport.publisher(DESCRIPTION_TOPIC, STRING, LATCHED_QOS)
            self._description_pub.publish(transport.new_message(STRING, data=self.robot_description()))
        self._subscriptions = [
            transport.subscribe(embodiment.controller.topic, CONTROLLER_MSGTYPES[interface], self.on_command,
                                COMMAND_QOS),
            transport.subscribe(RESET_TOPIC, UINT32, self.on_reset, COMMAND_QOS),
        ]
        gripper = embodiment.gripper
        if gripper is not None and gripper.interface == "forward_command":
            self._subscriptions.append(transport.subscribe(gripper.topic, FLOAT64_ARRAY, self.on_gripper,
                                                           COMMAND_QOS))
        self._tickers: list[Ticker] = []
        self.reset(params.seed)

    # ------------------------------------------------------------------------------------------- inputs
    def reset(self, seed: int, start: tuple[np.ndarray, float] | None = None) -> Task:
        """Lay out task `seed` and restart the episode clock; the arm holds its start pose (`start`: joint
        positions and gripper opening instead of the task's own, e.g. a demonstration's recovery start)."""
        task = self.sampler.task(seed)
        if start is not None:
            task = replace(task, initial_arm=np.asarray(start[0], dtype=np.float64), initial_gripper=float(start[1]))
        with self._lock:
            self.sim.reset(task.layout, task.initial_arm, task.initial_gripper)
            self.task = task
            self.succeeded = False
            self._trajectory = None
            self._gripper = task.initial_gripper
            self._episode_start = self.clock()
            self._last_step = self._episode_start
            self._next_frame = self._episode_start
        log.debug("task %d: %s", seed, task.instruction)
        return task

    def on_reset(self, msg: Any) -> None:
        self.reset(int(msg.data))

    def on_command(self, msg: Any) -> None:
        try:
            if self.interface == "forward_command":
                target = decode_command(msg, self.interface, self.arm_names)
                with self._lock:
                    self._trajectory = _Trajectory(self.clock(), target, np.array([1e-9]), target[None])
                    self.commands_received += 1
                return
            data = decode_joint_trajectory(msg)
            index = {name: i for i, name in enumerate(data.joint_names)}
            missing = [name for name in self.arm_names if name not in index]
            if missing:
                raise MessageError("missing_joint", f"trajectory lacks joints {missing}", JOINT_TRAJECTORY)
        except MessageError as error:
            self.errors.record(error, self.embodiment.controller.topic)
            return
        points = data.positions[:, [index[name] for name in self.arm_names]]
        times = np.maximum(np.asarray(data.times_from_start, dtype=np.float64), 1e-9)
        with self._lock:
            now = self.clock()
            start = self._trajectory.at(now) if self._trajectory is not None else self.sim.arm_targets()
            self._trajectory = _Trajectory(now, start, times, points)
            self.commands_received += 1

    def on_gripper(self, msg: Any) -> None:
        try:
            value = decode_float64_array(msg, expected_size=1)
        except MessageError as error:
            self.errors.record(error, "gripper")
            return
        with self._lock:
            self._gripper = float(value[0])

    # ------------------------------------------------------------------------------------------- stepping
    def step(self, now: float | None = None) -> None:
        """Advance the physics to `now` (default: the clock), publish joint states, and cameras when due."""
        now = self.clock() if now is None else now
        with self._lock:
            last = self._last_step if self._last_step is not None else now
            if now > last:
                joint_targets = self._trajectory.at(now) if self._trajectory is not None else self.sim.arm_targets()
                self.sim.set_targets(joint_targets, self._gripper)
                self.sim.advance(now - last)
                self._last_step = now
            if self.task is not None and self.sampler.success(self.sim, self.task):
                self.succeeded = True
            names, positions, velocities = self.joint_state()
            frame_due = now >= self._next_frame
            if frame_due:
                self._next_frame = max(self._next_frame + 1.0 / self.params.camera_rate, now)
                images = {cam.name: self.sim.render(cam.name) for cam, _ in self._camera_pubs}
                status = self.task_status(now)
                target = self.target_point()
                task_state = self.sampler.env_state(self.sim, self.task) if self.task is not None else None
        self._joint_pub.publish(encode_joint_state(self.transport.new_message, names, positions, velocities,
                                                   stamp=now))
        if frame_due:
            self.frames += 1
            new = self.transport.new_message
            for cam, publisher in self._camera_pubs:
                publisher.publish(encode_image(new, images[cam.name], "rgb8", stamp=now,
                                               frame_id=f"{cam.name}_optical"))
            self._task_pub.publish(new(STRING, data=json.dumps(status)))
            if status:
                self._done_pub.publish(new(BOOL, data=bool(status["success"])))
            if target is not None:
                self._target_pub.publish(encode_point_stamped(new, target, stamp=now,
                                                              frame_id=self.embodiment.base_frame))
            if task_state is not None:
                self._task_state_pub.publish(encode_float64_array(new, task_state))

    def robot_description(self) -> str:
        """The URDF of the simulated arm with this robot config's frame and names (what /robot_description gets)."""
        emb = self.embodiment
        velocities = {j.name: j.max_velocity for j in emb.joints}
        if emb.gripper is not None:
            velocities[emb.gripper.name] = emb.gripper.max_velocity
        target = [TargetJoint(j.name, TARGET_STATE_NAMES.index(j.name), j.lower, j.upper)
                  for j in emb.joints if j.name in TARGET_STATE_NAMES]
        return sim_arm_urdf(self.sim.model, name=emb.name, base_frame=emb.base_frame,
                            gripper=emb.gripper.name if emb.gripper is not None else "", velocities=velocities,
                            target=target)

    def target_point(self) -> np.ndarray | None:
        """The task's target point [3] (reach: the reach point, what `target_x|y|z` report; pick_place: where the
        block's centre rests on the pad); None before a task is laid out."""
        if self.task is None:
            return None
        return self.sampler.target_point(self.sim, self.task)

    def joint_state(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """The embodiment's state names with the simulated values (target dims: the task's reach point)."""
        arm = dict(zip(ARM_JOINTS, self.sim.arm_positions(), strict=True))
        arm_velocity = dict(zip(ARM_JOINTS, self.sim.arm_velocities(), strict=True))
        point = self.target_point()
        if point is not None:
            arm.update(zip(TARGET_STATE_NAMES, point, strict=True))
        gripper = self.embodiment.gripper
        if gripper is not None:
            arm[gripper.name] = self.sim.gripper_position()
        names = self.embodiment.state_names
        return (names, np.array([arm.get(n, 0.0) for n in names]),
                np.array([arm_velocity.get(n, 0.0) for n in names]))

    def task_status(self, now: float) -> dict[str, Any]:
        task = self.task
        if task is None:
            return {}
        return {"seed": task.seed, "instruction": task.instruction, "target": task.target,
                "distance": round(self.sampler.distance(self.sim, task), 4),
                "success": self.succeeded, "episode_time": round(now - self._episode_start, 4)}

    def start(self) -> None:
        self._last_step = self.clock()
        # one thread owns the simulation and its EGL renderer (see timing.make_ticker's own_thread)
        self._tickers = [make_ticker(self.transport, 1.0 / self.params.joint_rate, self.step, "sim-arm",
                                     own_thread=True)]
        for ticker in self._tickers:
            ticker.start()

    def close(self) -> None:
        for ticker in self._tickers:
            ticker.stop()
        for subscription in self._subscriptions:
            subscription.close()
        self.sim.close()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = driver_parser(PROGRAM, __doc__.split("\n\n")[0], camera_rate=10.0)
    parser.add_argument("--seed", type=int, default=0, help="the task laid out at start")
    parser.add_argument("--task", choices=sorted(TASK_KINDS), default="reach", help="the kind of task (default reach)")
    parser.add_argument("--no-description", dest="description", action="store_false",
                        help="do not publish the arm's URDF on /robot_description")
    parser.add_argument("--node-name", dest="node_name", default=NODE_NAME, help="ROS node name")
    return parser.parse_args(list(argv))


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    try:
        embodiment = load_robot(args.robot_config)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    transport = make_transport(args.transport, args.node_name, argv, PROGRAM)
    try:
        params = SimArmParams(args.joint_rate, args.camera_rate, args.seed, args.description, args.task)
        return serve(SimArmDriver(transport, embodiment, params), log, driver_summary(embodiment))
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
