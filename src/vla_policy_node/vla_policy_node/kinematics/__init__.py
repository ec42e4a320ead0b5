"""Kinematics from the robot's URDF (numpy only): forward kinematics, rotations, a small Servo for the fake arm."""

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
