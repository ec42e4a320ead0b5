"""The robot's kinematics for a node: kinematics.RobotKinematics from a URDF file, or from the latched
/robot_description topic (subscribed here until a file gave a model)."""

from __future__ import annotations

from typing import Any

from vla_policy_node.kinematics.robot_kinematics import DESCRIPTION_TOPIC, RobotKinematics
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import LATCHED_QOS

STRING = "std_msgs/msg/String"


def kinematics_args(embodiment: Embodiment) -> tuple[tuple[str, ...], str, tuple[str, str] | None]:
    """RobotKinematics' joint names, base frame and (for Cartesian action spaces) end-effector frame/link."""
    aspace = embodiment.action_space
    return embodiment.joint_names, embodiment.base_frame, (aspace.frame, aspace.ee_link) if aspace.cartesian else None


class RobotModel(RobotKinematics):
    def __init__(self, embodiment: Embodiment, transport: Transport | None = None, urdf_path: str = "",
                 description_topic: str = DESCRIPTION_TOPIC) -> None:
        super().__init__(*kinematics_args(embodiment), urdf_path=urdf_path, description_topic=description_topic)
        self.embodiment = embodiment
        self._subscription = None
        if self.path_chain is None and transport is not None:
            self._subscription = transport.subscribe(description_topic, STRING, self.on_description, LATCHED_QOS)

    def on_description(self, msg: Any) -> None:
        self.set_description(str(msg.data))

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
