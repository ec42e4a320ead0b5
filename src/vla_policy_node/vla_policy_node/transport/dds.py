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

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cyclonedds.core import DDSException, GuardCondition, InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
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
from vla_policy_node.transport.dds_config import DOMAINS, DdsConfig
from vla_policy_node.transport.dds_graph import RosGraphAnnouncer, RosNodeInfo
from vla_policy_node.transport.dds_types import DdsTypeRegistry
from vla_policy_node.transport.names import normalize_namespace, resolve_name, topic_to_dds
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile

log = logging.getLogger(__name__)

ANY_SAMPLE_STATE = SampleState.Any | ViewState.Any | InstanceState.Any
_TAKE_BATCH = 64


def dds_qos(profile: QosProfile, *, writer: bool, user_data: str) -> Qos:
    """rmw_cyclonedds' mapping of a ROS QoS profile onto DDS policies (plus our USER_DATA)."""
    policies: list[Any] = [
        Policy.Reliability.Reliable(max_blocking_time=duration(infinite=True))
        if profile.reliable
        else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if profile.transient_local else Policy.Durability.Volatile,
        Policy.History.KeepLast(depth=profile.depth),
        Policy.Liveliness.Automatic(lease_duration=duration(infinite=True)),
        Policy.Userdata(data=user_data.encode()),
    ]
    if profile.transient_local:
        # Cyclone keeps historical data per the durability service history, whose default depth is 1.
        policies.append(
            Policy.DurabilityService(
                cleanup_delay=0,
                history=Policy.History.KeepLast(depth=profile.depth),
                max_samples=-1,
                max_instances=-1,
                max_samples_per_instance=-1,
            )
        )
    if writer:
        policies.append(Policy.WriterDataLifecycle(autodispose=False))
        policies.append(Policy.DataRepresentation(use_cdrv0_representation=True))
    return Qos(*policies)


@dataclass(eq=False)
class _ReaderEntry:
    """A reader the dispatch thread drains, and what to do with its samples."""

    reader: DataReader
    sample_type: type
    on_samples: Callable[[list[Any]], None]
    condition: Any = None
    closed: bool = False


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
            self.transport._delete_writer(self.writer)


@dataclass(eq=False)
class _DdsSubscription(Subscription):
    topic: str
    msgtype: str
    entry: _ReaderEntry
    transport: DdsTransport

    def close(self) -> None:
        self.transport._unregister_reader(self.entry)


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
        self._domain_id = self.config.resolved_domain_id()
        DOMAINS.acquire(self._domain_id, self.config.resolved_config_xml())
        try:
            self.participant = DomainParticipant(
                self._domain_id, qos=Qos(Policy.Userdata(data=f"enclave={self.config.enclave};".encode()))
            )
        except Exception:
            DOMAINS.release(self._domain_id)
            raise
        self._lock = threading.RLock()
        self._topics: dict[str, Topic] = {}
        self._readers: list[_ReaderEntry] = []
        self._closed = False
        self._client_service_ids = itertools.count(1)
        self.graph = RosGraphAnnouncer(self.participant, self.types, self.node_name, self.namespace, self._qos_for)
        self.graph.publish()
        self._waitset = WaitSet(self.participant)
        self._wakeup = GuardCondition(self.participant)
        self._waitset.attach(self._wakeup)
        self._thread = threading.Thread(target=self._dispatch_loop, name=f"dds-{self.node_name}", daemon=True)
        self._thread.start()

    # -- Transport interface ------------------------------------------------------------------------

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        msgtype = normalize_msgtype(msgtype)
        name = self.resolve(topic)
        writer, cls = self._create_writer(topic_to_dds(name), msgtype, qos)
        return _DdsPublisher(name, msgtype, writer, cls, self)

    def subscribe(
        self, topic: str, msgtype: str, callback: MessageCallback, qos: QosProfile = DEFAULT_QOS
    ) -> Subscription:
        msgtype = normalize_msgtype(msgtype)
        name = self.resolve(topic)
        reader, cls = self._create_reader(topic_to_dds(name), msgtype, qos)

        def deliver(samples: list[Any]) -> None:
            for sample in samples:
                self._deliver(name, callback, sample)

        entry = self._register_reader(reader, cls, deliver)
        return _DdsSubscription(name, msgtype, entry, self)

    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        return self.types.new(msgtype, **fields)

    def now(self) -> float:
        return time.time()

    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer:
        from vla_policy_node.transport.dds_services import DdsServiceServer

        return DdsServiceServer(self, self.resolve(name), srvtype, handler)

    def client(self, name: str, srvtype: str) -> ServiceClient:
        from vla_policy_node.transport.dds_services import DdsServiceClient

        return DdsServiceClient(self, self.resolve(name), srvtype)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wakeup.set(True)
        if threading.current_thread() is not self._thread:  # close() may be called from a callback
            self._thread.join(timeout=5.0)
        with self._lock:
            self._readers.clear()
        self.participant.__del__()  # deletes every child entity now
        DOMAINS.release(self._domain_id)

    # -- ROS graph ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def resolve(self, name: str) -> str:
        return resolve_name(name, self.namespace, self.node_name)

    def discovered_nodes(self) -> list[RosNodeInfo]:
        """Nodes announced on ros_discovery_info so far (`ros2 node list`), this one included."""
        return self.graph.nodes()

    def type_hash(self, rostype: str) -> str:
        return self.types.typestore.hash_rihs01(rostype)

    # -- entity helpers (also used by dds_services) ---------------------------------------------------

    def _qos_for(self, profile: QosProfile, rostype: str, writer: bool, extra_user_data: str) -> Qos:
        return dds_qos(profile, writer=writer, user_data=f"{extra_user_data}typehash={self.type_hash(rostype)};")

    def _topic(self, dds_name: str, cls: type) -> Topic:
        with self._lock:
            self._check_open()
            topic = self._topics.get(dds_name)
            if topic is None:
                topic = Topic(self.participant, dds_name, cls)
                self._topics[dds_name] = topic
            elif topic.data_type is not cls:
                raise TransportError(
                    f"DDS topic {dds_name} already used with type {topic.data_type.__name__}, not {cls.__name__}"
                )
            return topic

    def _create_writer(
        self,
        dds_name: str,
        msgtype: str,
        qos: QosProfile,
        *,
        sample_type: type | None = None,
        hash_type: str | None = None,
        extra_user_data: str = "",
    ) -> tuple[DataWriter, type]:
        cls = sample_type or self.types.idl_type(msgtype)
        topic = self._topic(dds_name, cls)
        writer = DataWriter(self.participant, topic, self._qos_for(qos, hash_type or msgtype, True, extra_user_data))
        self.graph.add(writer.get_guid().bytes, writer=True)
        return writer, cls

    def _create_reader(
        self,
        dds_name: str,
        msgtype: str,
        qos: QosProfile,
        *,
        sample_type: type | None = None,
        hash_type: str | None = None,
        extra_user_data: str = "",
    ) -> tuple[DataReader, type]:
        cls = sample_type or self.types.idl_type(msgtype)
        topic = self._topic(dds_name, cls)
        reader = DataReader(self.participant, topic, self._qos_for(qos, hash_type or msgtype, False, extra_user_data))
        self.graph.add(reader.get_guid().bytes, writer=False)
        return reader, cls

    def _delete_writer(self, writer: DataWriter) -> None:
        with self._lock:
            if self._closed:
                return
            self.graph.remove(writer.get_guid().bytes, writer=True)
            writer.__del__()

    def _delete_reader(self, reader: DataReader) -> None:
        with self._lock:
            if self._closed:
                return
            self.graph.remove(reader.get_guid().bytes, writer=False)
            reader.__del__()

    def _register_reader(
        self, reader: DataReader, sample_type: type, on_samples: Callable[[list[Any]], None]
    ) -> _ReaderEntry:
        entry = _ReaderEntry(reader, sample_type, on_samples, ReadCondition(reader, ANY_SAMPLE_STATE))
        with self._lock:
            self._check_open()
            self._waitset.attach(entry.condition)
            self._readers.append(entry)
        self._wakeup.set(True)
        return entry

    def _unregister_reader(self, entry: _ReaderEntry) -> None:
        with self._lock:
            if entry.closed or self._closed:
                entry.closed = True
                return
            entry.closed = True
            self._readers.remove(entry)
            self._waitset.detach(entry.condition)
            self.graph.remove(entry.reader.get_guid().bytes, writer=False)
            entry.condition.__del__()
            entry.reader.__del__()

    def _next_client_service_id(self) -> bytes:
        """rmw_cyclonedds' client/service id: participant GUID prefix + big-endian counter."""
        return self.graph.participant_gid[:12] + next(self._client_service_ids).to_bytes(4, "big")

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("transport is closed")

    # -- dispatch ---------------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        timeout = duration(milliseconds=500)
        while True:
            try:
                self._waitset.wait(timeout)
            except DDSException:
                if self._closed:
                    return
                raise
            self._wakeup.take()
            if self._closed:
                return
            with self._lock:
                entries = list(self._readers)
            for entry in entries:
                self._drain(entry)

    def _drain(self, entry: _ReaderEntry) -> None:
        while True:
            with self._lock:
                if entry.closed or self._closed:
                    return
                try:
                    samples = entry.reader.take(N=_TAKE_BATCH)
                except DDSException:
                    return
            valid = [s for s in samples if isinstance(s, entry.sample_type)]
            if valid:
                try:
                    entry.on_samples(valid)
                except Exception:
                    log.exception("handler for %s failed", entry.reader.topic.get_name())
            if len(samples) < _TAKE_BATCH:
                return
