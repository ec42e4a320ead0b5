"""ROS messages <-> numpy and core types, written once against ROS field names.

Every decoder reads any object with the ROS field names (rclpy message, rosbags dataclass, DDS struct) and
raises `MessageError` for input the core must not trust; every encoder builds messages through a factory
`new(msgtype, **fields)` (`Transport.new_message`, or `rosbags_factory()` offline), so one function serves
all transports. Types come from `typestore`, generated at run time from src/vla_msgs.
"""

from vla_policy_node.msgs.chunks import decode_action_chunk, encode_action_chunk
from vla_policy_node.msgs.diagnostics import DiagnosticEntry, decode_diagnostics, encode_diagnostics
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.fields import MessageFactory, rosbags_factory
from vla_policy_node.msgs.geometry import (
    PointData,
    PoseData,
    TwistData,
    decode_point_stamped,
    decode_pose_stamped,
    decode_twist_stamped,
    encode_point_stamped,
    encode_pose_stamped,
    encode_twist_stamped,
)
from vla_policy_node.msgs.images import (
    decode_compressed_image,
    decode_depth,
    decode_image,
    encode_compressed_image,
    encode_image,
    image_to_array,
)
from vla_policy_node.msgs.joints import (
    JointJogData,
    JointStateData,
    JointTrajectoryData,
    decode_float64_array,
    decode_joint_jog,
    decode_joint_state,
    decode_joint_trajectory,
    encode_float64_array,
    encode_joint_jog,
    encode_joint_state,
    encode_joint_trajectory,
)
from vla_policy_node.msgs.markers import decode_marker_points, encode_delete_markers, encode_path_markers
from vla_policy_node.msgs.policy_status import decode_policy_status, encode_policy_status
from vla_policy_node.msgs.stamps import (
    duration_to_seconds,
    header_stamp,
    make_duration,
    make_header,
    make_time,
    seconds_to_sec_nanosec,
    time_to_seconds,
)
from vla_policy_node.msgs.typestore import build_typestore, default_typestore, type_hash

__all__ = [
    "DiagnosticEntry",
    "JointJogData",
    "JointStateData",
    "JointTrajectoryData",
    "MessageError",
    "MessageErrorCounter",
    "MessageFactory",
    "PointData",
    "PoseData",
    "TwistData",
    "build_typestore",
    "decode_action_chunk",
    "decode_compressed_image",
    "decode_depth",
    "decode_diagnostics",
    "decode_float64_array",
    "decode_image",
    "decode_joint_jog",
    "decode_joint_state",
    "decode_joint_trajectory",
    "decode_marker_points",
    "decode_point_stamped",
    "decode_policy_status",
    "decode_pose_stamped",
    "decode_twist_stamped",
    "default_typestore",
    "duration_to_seconds",
    "encode_action_chunk",
    "encode_compressed_image",
    "encode_delete_markers",
    "encode_diagnostics",
    "encode_float64_array",
    "encode_image",
    "encode_joint_jog",
    "encode_joint_state",
    "encode_joint_trajectory",
    "encode_path_markers",
    "encode_point_stamped",
    "encode_policy_status",
    "encode_pose_stamped",
    "encode_twist_stamped",
    "header_stamp",
    "image_to_array",
    "make_duration",
    "make_header",
    "make_time",
    "rosbags_factory",
    "seconds_to_sec_nanosec",
    "time_to_seconds",
    "type_hash",
]
