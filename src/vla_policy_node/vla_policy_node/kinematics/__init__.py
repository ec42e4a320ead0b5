"""Kinematics from the robot's URDF (numpy only): forward kinematics for rviz markers of predicted chunks."""

from vla_policy_node.kinematics.urdf import (
    Joint,
    KinematicChain,
    UrdfError,
    UrdfModel,
    default_tip,
    load_urdf,
    parse_urdf,
)

__all__ = ["Joint", "KinematicChain", "UrdfError", "UrdfModel", "default_tip", "load_urdf", "parse_urdf"]
