"""What the policy node shows of each chunk: /vla/action_chunk always, rviz's predicted tool path (markers) and
the ghost robot's joint states where they can be made (the path needs the robot's kinematics)."""

from __future__ import annotations

import logging

import numpy as np

from vla_policy_node.control.command import ChunkError, CommandSpace
from vla_policy_node.kinematics.robot_kinematics import RobotKinematics
from vla_policy_node.msgs.chunks import ACTION_CHUNK, encode_action_chunk
from vla_policy_node.msgs.joints import JOINT_STATE, encode_joint_state
from vla_policy_node.msgs.markers import MARKER_ARRAY, encode_path_markers
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS

log = logging.getLogger(__name__)


class PredictionOutput:
    def __init__(self, transport: Transport, embodiment: Embodiment, space: CommandSpace, robot: RobotKinematics,
                 chunk_topic: str, path_topic: str, joint_states_topic: str) -> None:
        self.transport = transport
        self.embodiment = embodiment
        self.space = space
        self.robot = robot
        self._chunk_pub = transport.publisher(chunk_topic, ACTION_CHUNK, DEFAULT_QOS)
        self._path_pub = transport.publisher(path_topic, MARKER_ARRAY, DEFAULT_QOS)
        self._ghost_pub = transport.publisher(joint_states_topic, JOINT_STATE, DEFAULT_QOS)
        self._warned = False
        self.last_chunk_msg: object | None = None  # the newest vla_msgs/ActionChunk (the action's feedback)

    def publish(self, chunk: ActionChunk, obs: Observation, latency: float, now: float) -> None:
        new = self.transport.new_message
        frame = self.embodiment.action_space.frame
        self.last_chunk_msg = encode_action_chunk(new, chunk, frame_id=frame, inference_latency=latency)
        self._chunk_pub.publish(self.last_chunk_msg)
        try:
            arm, gripper = self.space.convert_chunk(chunk, obs.state)
        except ChunkError:
            return  # the loop rejected it too and reports why
        points: np.ndarray | None = None
        if self.space.kind == "joint_position":
            names = list(self.embodiment.joint_names)
            final = list(arm[-1])
            if gripper is not None and self.embodiment.gripper is not None:
                names.append(self.embodiment.gripper.name)
                final.append(float(gripper[-1]))
            self._ghost_pub.publish(encode_joint_state(new, names, final, stamp=now))
            points = self.robot.tool_positions(arm)
            frame = self.robot.path_frame
        elif self.space.kind == "ee_pose":
            points = arm[:, :3]
        else:  # twist: integrate the predicted velocities from the measured tool position
            start_pose = self.robot.ee_pose(obs.state)
            if start_pose is not None:
                points = start_pose[:3] + np.cumsum(arm[:, :3] * chunk.dt, axis=0)
        if points is None:
            if not self._warned:
                self._warned = True
                log.warning("predicted path markers off: %s (logged once)", self.robot.problem)
            return
        self._path_pub.publish(encode_path_markers(new, points, stamp=now, frame_id=frame))
