"""One small interface (`Transport`), backends: DDS (cyclonedds), bag (rosbags), rclpy, in-process.

    from vla_policy_node.transport import DdsTransport, DdsConfig, SENSOR_DATA_QOS
    with DdsTransport(DdsConfig(node_name="vla_policy")) as t:
        t.subscribe("/camera/color/image_raw", "sensor_msgs/msg/Image", on_image, SENSOR_DATA_QOS)
        pub = t.publisher("/arm_controller/commands", "std_msgs/msg/Float64MultiArray")
        pub.publish(encode_float64_array(t.new_message, q))

Backends are imported lazily so that using one does not require the others' libraries.
"""

from typing import Any

from vla_policy_node.transport.base import (
    MessageCallback,
    Publisher,
    ServiceClient,
    ServiceHandler,
    ServiceServer,
    ServiceUnavailable,
    Subscription,
    Transport,
    TransportError,
)
from vla_policy_node.transport.qos import (
    DEFAULT_QOS,
    LATCHED_QOS,
    SENSOR_DATA_QOS,
    SERVICES_QOS,
    Durability,
    QosProfile,
    Reliability,
)

_LAZY = {
    "DdsTransport": "vla_policy_node.transport.dds",
    "DdsConfig": "vla_policy_node.transport.dds_config",
    "loopback_config_xml": "vla_policy_node.transport.dds_config",
    "RosNodeInfo": "vla_policy_node.transport.dds_graph",
    "BagTransport": "vla_policy_node.transport.bag",
    "BagWriter": "vla_policy_node.transport.bag",
    "BagReader": "vla_policy_node.transport.bag",
    "BagMessage": "vla_policy_node.transport.bag",
    "BagError": "vla_policy_node.transport.bag",
    "read_bag": "vla_policy_node.transport.bag",
    "RclpyTransport": "vla_policy_node.transport.rclpy_backend",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_QOS",
    "LATCHED_QOS",
    "SENSOR_DATA_QOS",
    "SERVICES_QOS",
    "Durability",
    "MessageCallback",
    "Publisher",
    "QosProfile",
    "Reliability",
    "ServiceClient",
    "ServiceHandler",
    "ServiceServer",
    "ServiceUnavailable",
    "Subscription",
    "Transport",
    "TransportError",
    *_LAZY,
]
