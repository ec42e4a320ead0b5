"""DdsTransport: a ROS 2 participant in pure Python (cyclonedds), wire-compatible with rmw_cyclonedds.

What makes it a ROS participant (each checked against Jazzy, see shared/CONTEXT.md):
- topics `rt/<name>`, types `pkg::msg::dds_::T_` generated from the typestore, XCDR1 payloads;
- `typehash=RIHS01_<hex>;` in the USER_DATA of every reader and writer, `enclave=/;` on the participant;
- a ParticipantEntitiesInfo on `ros_discovery_info` naming the node and its endpoints (`ros2 node list`);
- QoS as rmw_cyclonedds sets it (keep-last, no autodispose, durability service history = depth for latched).

Callbacks run on one dispatch thread per transport (like a single-threaded executor), in arrival order
per reader. Service servers run their handler on that thread too; service clients block the caller only.

Like an rclpy node it has parameters (`parameters`: a ParameterTable with rclpy's `use_sim_time` and
`start_type_description_service`, served as the rcl_interfaces parameter services, see dds_parameters.py),
its clock follows /clock while `use_sim_time` is true, and `rosout_handler()` puts Python log records on /rosout.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from cyclonedds.pub import DataWriter
from rosbags.typesys.store import Typestore

from vla_policy_node.msgs.stamps import time_to_seconds
from vla_policy_node.msgs.typestore import default_typestore, normalize_msgtype
from vla_policy_node.transport.base import (
    MessageCallback,
    Publisher,
    ServiceClient,
    ServiceHandler,
    ServiceServer,
    Subscription,
    Transport,
    TransportError,
)
from vla_policy_node.transport.dds_config import DdsConfig
from vla_policy_node.transport.dds_graph import RosNodeInfo
from vla_policy_node.transport.dds_parameters import DdsParameterServices
from vla_policy_node.transport.dds_participant import DdsParticipant, ReaderEntry
from vla_policy_node.transport.dds_services import DdsServiceClient, DdsServiceServer
from vla_policy_node.transport.dds_types import DdsTypeRegistry
from vla_policy_node.transport.names import normalize_namespace, resolve_name, topic_to_dds
from vla_policy_node.transport.parameters import Param, ParameterTable
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile, Reliability
from vla_policy_node.transport.rosout import InstalledHandler, RosoutHandler

CLOCK = "rosgraph_msgs/msg/Clock"
CLOCK_QOS = QosProfile(Reliability.BEST_EFFORT, depth=1)  # rclpy's TimeSource subscription
# What rclpy declares on every node (it starts ~/get_type_description, which we do not: hence false here).
RCLPY_NODE_PARAMETERS = {
    "use_sim_time": Param(False, live=True),
    "start_type_description_service": Param(False, "If enabled, start the ~/get_type_description service.",
                                            read_only=True),
}


@dataclass(eq=False)
class _DdsPublisher(Publisher):
    topic: str
    msgtype: str
    writer: DataWriter
    sample_type: type
    transport: DdsTransport
    closed: bool = field(default=False)

    def publish(self, msg: Any) -> None:
        if self.closed or self.transport.closed:
            raise TransportError(f"publisher on {self.topic} is closed")
        if not isinstance(msg, self.sample_type):
            msg = self.transport.types.coerce(self.msgtype, msg)
        self.writer.write(msg)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.endpoints.delete_writer(self.writer)


@dataclass(eq=False)
class _DdsSubscription(Subscription):
    topic: str
    msgtype: str
    entry: ReaderEntry
    transport: DdsTransport

    def close(self) -> None:
        self.transport.endpoints.unregister_reader(self.entry)


class DdsTransport(Transport):
    """See the module docstring. `DdsTransport(DdsConfig(node_name="policy", loopback=True))`."""

    def __init__(self, config: DdsConfig | None = None, typestore: Typestore | None = None) -> None:
        super().__init__()
        self.config = config or DdsConfig()
        self.namespace = normalize_namespace(self.config.namespace)
        self.node_name = self.config.node_name
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.node_name):
            raise ValueError(f"invalid ROS node name {self.node_name!r}")
        self.types = DdsTypeRegistry(typestore or default_typestore())
        self.endpoints = DdsParticipant(self.config.resolved_domain_id(), self.config.resolved_config_xml(),
                                        self.config.enclave, self.types, self.node_name, self.namespace)
        self.participant = self.endpoints.participant
        self.graph = self.endpoints.graph
        self.parameters = ParameterTable()
        self._rosout: InstalledHandler | None = None
        self._sim_time = False
        self._clock_time = 0.0
        self._clock_subscription: Subscription | None = None
        self._parameter_services = (DdsParameterServices(self, self.parameters, self.resolve("~"))
                                    if self.config.parameter_services else None)
        for name, spec in RCLPY_NODE_PARAMETERS.items():
            self.parameters.declare(name, spec)
        self.parameters.add_on_set(self._on_own_parameters)

    # -- Transport interface ------------------------------------------------------------------------

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        msgtype = normalize_msgtype(msgtype)
        name = self.resolve(topic)
        writer, cls = self.endpoints.create_writer(topic_to_dds(name), msgtype, qos)
        return _DdsPublisher(name, msgtype, writer, cls, self)

    def subscribe(
        self, topic: str, msgtype: str, callback: MessageCallback, qos: QosProfile = DEFAULT_QOS
    ) -> Subscription:
        msgtype = normalize_msgtype(msgtype)
        name = self.resolve(topic)
        reader, cls = self.endpoints.create_reader(topic_to_dds(name), msgtype, qos)

        def deliver(samples: list[Any]) -> None:
            for sample in samples:
                self._deliver(name, callback, sample)

        entry = self.endpoints.register_reader(reader, cls, deliver)
        return _DdsSubscription(name, msgtype, entry, self)

    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        return self.types.new(msgtype, **fields)

    def now(self) -> float:
        """Wall time, or the latest /clock while `use_sim_time` (0.0 until the first one, as rclpy)."""
        return self._clock_time if self._sim_time else time.time()

    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer:
        return DdsServiceServer(self.endpoints, self.resolve(name), srvtype, handler)

    def client(self, name: str, srvtype: str) -> ServiceClient:
        return DdsServiceClient(self.endpoints, self.resolve(name), srvtype)

    def close(self) -> None:
        if self._rosout is not None:
            self._rosout.remove()
            self._rosout = None
        self.endpoints.close()

    # -- parameters, clock, logging -----------------------------------------------------------------

    def _on_own_parameters(self, changes: list[tuple[str, object]]) -> str:
        for name, value in changes:
            if name == "use_sim_time":
                self._set_sim_time(bool(value))
        return ""

    def enable_sim_time(self, enabled: bool = True) -> None:
        """Set `use_sim_time` (as `-p use_sim_time:=true` would under rclpy)."""
        from vla_policy_node.transport.parameters import ParameterType

        result = self.parameters.set_atomically([("use_sim_time", ParameterType.BOOL, bool(enabled))])
        if not result.successful:
            raise TransportError(result.reason)

    def _set_sim_time(self, enabled: bool) -> None:
        if enabled and self._clock_subscription is None:
            self._clock_subscription = self.subscribe("/clock", CLOCK, self._on_clock, CLOCK_QOS)
        self._sim_time = enabled

    def _on_clock(self, msg: object) -> None:
        self._clock_time = time_to_seconds(msg.clock)  # type: ignore[attr-defined]

    def rosout_handler(self, level: int = logging.NOTSET) -> RosoutHandler:
        """A logging handler that publishes records on /rosout under this node's name."""
        return RosoutHandler(self, self.node_name, level)

    def log_to_rosout(self) -> None:
        """Every Python log record of this process also goes to /rosout (a node program's one transport) until
        `close()`."""
        if self._rosout is None:
            self._rosout = InstalledHandler(self.rosout_handler())

    # -- ROS graph ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.endpoints.closed

    def resolve(self, name: str) -> str:
        return resolve_name(name, self.namespace, self.node_name)

    def discovered_nodes(self) -> list[RosNodeInfo]:
        """Nodes announced on ros_discovery_info so far (`ros2 node list`), this one included."""
        return self.graph.nodes()

    def type_hash(self, rostype: str) -> str:
        return self.endpoints.type_hash(rostype)
