"""The robot's kinematics from a URDF (a file, or the text of /robot_description): tool positions for the
predicted-path markers and, for Cartesian action spaces, the measured end-effector pose (FK of the joints).

Until a description arrives `problem` says why there is no model; callers report that and carry on. The node's
RobotModel (nodes/robot_model.py) subscribes this to the latched /robot_description; the bag replay feeds it the
recorded one.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from vla_policy_node.kinematics.rotation import rpy_from_matrix
from vla_policy_node.kinematics.urdf import KinematicChain, UrdfError, UrdfModel, default_tip, load_urdf, parse_urdf

log = logging.getLogger(__name__)

DESCRIPTION_TOPIC = "/robot_description"


class RobotKinematics:
    """Tool-path and end-effector FK for one robot; thread-safe (the model is swapped whole).

    joint_names: the arm's joints in config order; base_frame: where the tool path is drawn (the URDF's root if
    it lacks that link); ee: (frame, link) of a Cartesian action space, whose pose `ee_pose` gives."""

    def __init__(self, joint_names: tuple[str, ...], base_frame: str, ee: tuple[str, str] | None = None,
                 urdf_path: str = "", description_topic: str = DESCRIPTION_TOPIC) -> None:
        self.joint_names = tuple(joint_names)
        self.base_frame = base_frame
        self.ee = ee
        self._lock = threading.Lock()
        self.path_chain: KinematicChain | None = None
        self.ee_chain: KinematicChain | None = None
        self.problem = f"no robot description yet (waiting for {description_topic}, or pass a URDF file)"
        if urdf_path:
            try:
                self._set_model(load_urdf(urdf_path))
            except UrdfError as error:
                self.problem = f"URDF file unusable: {error}"
                log.error("%s", self.problem)

    def set_description(self, urdf: str) -> None:
        """The URDF text of a robot description; an unusable one leaves the reason in `problem`."""
        try:
            self._set_model(parse_urdf(urdf))
        except UrdfError as error:
            self.problem = f"robot description unusable: {error}"
            log.error("%s", self.problem)

    def _set_model(self, model: UrdfModel) -> None:
        base = self.base_frame if self.base_frame in model.links else model.root
        path_chain = model.chain(base, default_tip(model, self.joint_names))
        ee_chain = model.chain(*self.ee) if self.ee is not None else None
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
        return chain.positions(np.atleast_2d(joint_positions), self.joint_names)

    @property
    def path_frame(self) -> str:
        chain = self.path_chain
        return chain.base if chain is not None else self.base_frame

    def ee_pose(self, state: np.ndarray | None) -> np.ndarray | None:
        """[x, y, z, roll, pitch, yaw] of the action space's ee_link in its frame for measured joints (config
        order, extra trailing values such as the gripper ignored); None without a model or a state."""
        chain = self.ee_chain
        if chain is None or state is None:
            return None
        n = len(self.joint_names)
        pose = chain.poses(np.asarray(state, dtype=np.float64)[None, :n], self.joint_names)[0]
        return np.array([*pose[:3, 3], *rpy_from_matrix(pose[:3, :3])])
