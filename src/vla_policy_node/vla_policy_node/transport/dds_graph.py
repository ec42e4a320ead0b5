"""Being visible as a ROS 2 node without rclpy: the `ros_discovery_info` announcement.

rmw implementations tell each other which DDS readers and writers belong to which node by publishing a
`rmw_dds_common/msg/ParticipantEntitiesInfo` sample on the DDS topic `ros_discovery_info` (no `rt/` prefix,
reliable, transient local, depth 1). `ros2 node list` / `ros2 node info` are built from it. This module
publishes ours (re-sent whenever an endpoint is added or removed) and reads everybody's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from vla_policy_node.transport.dds_types import DdsTypeRegistry
from vla_policy_node.transport.qos import LATCHED_QOS, QosProfile

DISCOVERY_TOPIC = "ros_discovery_info"
PARTICIPANT_INFO_TYPE = "rmw_dds_common/msg/ParticipantEntitiesInfo"


@dataclass(frozen=True)
class RosNodeInfo:
    """One node as announced on ros_discovery_info."""

    namespace: str
    name: str
    participant_gid: bytes
    reader_gids: tuple[bytes, ...]
    writer_gids: tuple[bytes, ...]


class RosGraphAnnouncer:
    """Publishes this participant's node and its endpoints; collects other participants' announcements."""

    def __init__(
        self,
        participant: DomainParticipant,
        types: DdsTypeRegistry,
        node_name: str,
        namespace: str,
        qos_factory: Callable[[QosProfile, str, bool, str], Qos],
    ) -> None:
        self._types = types
        self._node_name = node_name
        self._namespace = namespace
        self._gid = participant.get_guid().bytes
        cls = types.idl_type(PARTICIPANT_INFO_TYPE)
        self._topic = Topic(participant, DISCOVERY_TOPIC, cls)
        latched: QosProfile = LATCHED_QOS
        self._writer = DataWriter(participant, self._topic, qos_factory(latched, PARTICIPANT_INFO_TYPE, True, ""))
        # Keyless topic: one instance for all participants, so keep a generous history on the reader.
        self._reader = DataReader(
            participant, self._topic, qos_factory(QosProfile(depth=256, durability=latched.durability),
                                                  PARTICIPANT_INFO_TYPE, False, "")
        )
        self._lock = threading.Lock()
        self._readers: list[bytes] = []
        self._writers: list[bytes] = []
        self._seen: dict[bytes, tuple[RosNodeInfo, ...]] = {}

    @property
    def participant_gid(self) -> bytes:
        return self._gid

    def add(self, gid: bytes, *, writer: bool) -> None:
        with self._lock:
            (self._writers if writer else self._readers).append(gid)
        self.publish()

    def remove(self, gid: bytes, *, writer: bool) -> None:
        with self._lock:
            entries = self._writers if writer else self._readers
            if gid in entries:
                entries.remove(gid)
        self.publish()

    def publish(self) -> None:
        with self._lock:
            readers, writers = list(self._readers), list(self._writers)
        new = self._types.new
        gid = "rmw_dds_common/msg/Gid"
        info = new(
            PARTICIPANT_INFO_TYPE,
            gid=new(gid, data=self._gid),
            node_entities_info_seq=[
                new(
                    "rmw_dds_common/msg/NodeEntitiesInfo",
                    node_namespace=self._namespace,
                    node_name=self._node_name,
                    reader_gid_seq=[new(gid, data=g) for g in readers],
                    writer_gid_seq=[new(gid, data=g) for g in writers],
                )
            ],
        )
        self._writer.write(info)

    def nodes(self) -> list[RosNodeInfo]:
        """Nodes announced by every participant seen so far (including this one)."""
        with self._lock:
            return self._update_seen()

    def _update_seen(self) -> list[RosNodeInfo]:
        sample: Any  # a ParticipantEntitiesInfo: an IdlStruct whose members are built from the typestore
        for sample in self._reader.take(N=256):
            if not hasattr(sample, "node_entities_info_seq"):
                continue
            participant = bytes(sample.gid.data)
            self._seen[participant] = tuple(
                RosNodeInfo(
                    namespace=node.node_namespace,
                    name=node.node_name,
                    participant_gid=participant,
                    reader_gids=tuple(bytes(g.data) for g in node.reader_gid_seq),
                    writer_gids=tuple(bytes(g.data) for g in node.writer_gid_seq),
                )
                for node in sample.node_entities_info_seq
            )
        return [node for nodes in self._seen.values() for node in nodes]
