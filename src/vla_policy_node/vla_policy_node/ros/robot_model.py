"""The robot's kinematics for a node: from a URDF file, or from the latched /robot_description topic.

Used for the predicted-path markers (tool positions of a joint chunk) and, for Cartesian action spaces, the
measured end-effector pose (FK of the measured joints). Until a description arrives `problem` says why
there is no model; nodes report that once and carry on without the markers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from vla_policy_node.control.rotation import rpy_from_quat
from vla_policy_node.kinematics.urdf import KinematicChain, UrdfError, UrdfModel, default_tip, load_urdf, parse_urdf
from vla_policy_node.policy.embodiment import Embodiment
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import LATCHED_QOS

log = logging.getLogger(__name__)

STRING = "std_msgs/msg/String"
DESCRIPTION_TOPIC = "/robot_description"


def rpy_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """3x3 rotation -> ROS fixed-axis roll, pitch, yaw (through a quaternion, like the safety filter)."""
    m = rotation
    w = 0.5 * np.sqrt(max(1.0 + m[0, 0] + m[1, 1] + m[2, 2], 1e-12))
    x = (m[2, 1] - m[1, 2]) / (4 * w)
    y = (m[0, 2] - m[2, 0]) / (4 * w)
    z = (m[1, 0] - m[0, 1]) / (4 * w)
    if w < 1e-3:  # near 180 degrees: the trace formula is ill-conditioned, use the largest diagonal
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0, 0.0, 0.0]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
        w = (m[k, j] - m[j, k]) / s
        x, y, z = q
    return rpy_from_quat((float(w), float(x), float(y), float(z)))


class RobotModel:
    """Tool-path and end-effector FK for one embodiment; thread-safe (the model is swapped whole)."""

    def __init__(self, embodiment: Embodiment, transport: Transport | None = None, urdf_path: str = "",
                 description_topic: str = DESCRIPTION_TOPIC) -> None:
        self.embodiment = embodiment
        self._lock = threading.Lock()
        self.path_chain: KinematicChain | None = None
        self.ee_chain: KinematicChain | None = None
        self.problem = f"no robot description yet (waiting for {description_topic}, or pass a URDF file)"
        self._subscription = None
        if urdf_path:
            try:
                self._set_model(load_urdf(urdf_path))
            except UrdfError as error:
                self.problem = f"URDF file unusable: {error}"
                log.error("%s", self.problem)
        if self.path_chain is None and transport is not None:
            self._subscription = transport.subscribe(description_topic, STRING, self.on_description, LATCHED_QOS)

    def on_description(self, msg: Any) -> None:
        try:
            self._set_model(parse_urdf(str(msg.data)))
        except UrdfError as error:
            self.problem = f"robot description unusable: {error}"
            log.error("%s", self.problem)

    def _set_model(self, model: UrdfModel) -> None:
        emb = self.embodiment
        base = emb.base_frame if emb.base_frame in model.links else model.root
        path_chain = model.chain(base, default_tip(model, emb.joint_names))
        ee_chain = None
        if emb.action_space.cartesian:
            ee_chain = model.chain(emb.action_space.frame, emb.action_space.ee_link)
        with self._lock:
            self.path_chain, self.ee_chain = path_chain, ee_chain
            self.problem = ""
        log.info("kinematics from URDF %r: path %s", model.name, path_chain)

    @property
    def ready(self) -> bool:
        return self.path_chain is not None

    def tool_positions(self, joint_positions: np.ndarray) -> np.ndarray | None:
        """[H, n] arm joints (config order) -> tool positions [H, 3] in the path frame; None without a model."""
        chain = self.path_chain
        if chain is None:
            return None
        return chain.positions(np.atleast_2d(joint_positions), self.embodiment.joint_names)

    @property
    def path_frame(self) -> str:
        chain = self.path_chain
        return chain.base if chain is not None else self.embodiment.base_frame

    def ee_pose(self, state: np.ndarray | None) -> np.ndarray | None:
        """[x, y, z, roll, pitch, yaw] of the action space's ee_link in its frame for measured joints (config
        order, extra trailing values such as the gripper ignored); None without a model or a state."""
        chain = self.ee_chain
        if chain is None or state is None:
            return None
        n = len(self.embodiment.joints)
        pose = chain.poses(np.asarray(state, dtype=np.float64)[None, :n], self.embodiment.joint_names)[0]
        return np.array([*pose[:3, 3], *rpy_from_matrix(pose[:3, :3])])

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
