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

from vla_policy_node.kinematics.rotation import rpy_from_matrix
from vla_policy_node.kinematics.urdf import KinematicChain, UrdfError, UrdfModel, default_tip, load_urdf, parse_urdf
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import LATCHED_QOS

log = logging.getLogger(__name__)

STRING = "std_msgs/msg/String"
DESCRIPTION_TOPIC = "/robot_description"


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
