"""DdsTransport: a ROS 2 participant in pure Python (cyclonedds), wire-compatible with rmw_cyclonedds.

What makes it a ROS participant (each checked against Jazzy, see shared/CONTEXT.md):
- topics `rt/<name>`, types `pkg::msg::dds_::T_` generated from the typestore, XCDR1 payloads;
- `typehash=RIHS01_<hex>;` in the USER_DATA of every reader and writer, `enclave=/;` on the participant;
- a ParticipantEntitiesInfo on `ros_discovery_info` naming the node and its endpoints (`ros2 node list`);
- QoS as rmw_cyclonedds sets it (keep-last, no autodispose, durability service history = depth for latched).

Callbacks run on one dispatch thread per transport (like a single-threaded executor), in arrival order
per reader. Service servers run their handler on that thread too; service clients block the caller only.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from cyclonedds.pub import DataWriter
from rosbags.typesys.store import Typestore

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
from vla_policy_node.transport.dds_participant import DdsParticipant, ReaderEntry
from vla_policy_node.transport.dds_services import DdsServiceClient, DdsServiceServer
from vla_policy_node.transport.dds_types import DdsTypeRegistry
from vla_policy_node.transport.names import normalize_namespace, resolve_name, topic_to_dds
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile


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
        return time.time()

    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer:
        return DdsServiceServer(self.endpoints, self.resolve(name), srvtype, handler)

    def client(self, name: str, srvtype: str) -> ServiceClient:
        return DdsServiceClient(self.endpoints, self.resolve(name), srvtype)

    def close(self) -> None:
        self.endpoints.close()

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
