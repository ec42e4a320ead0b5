"""One DDS participant as a ROS 2 node sees it: its topics, readers and writers (with rmw_cyclonedds' QoS and
USER_DATA), its announcement on ros_discovery_info, and the one thread that drains its readers.

`DdsTransport` (topics) and `dds_services` (service servers and clients) both build on it, so neither needs
the other's internals.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cyclonedds.core import DDSException, GuardCondition, InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from vla_policy_node.transport.base import TransportError
from vla_policy_node.transport.dds_config import DOMAINS
from vla_policy_node.transport.dds_graph import RosGraphAnnouncer
from vla_policy_node.transport.dds_types import DdsTypeRegistry
from vla_policy_node.transport.qos import QosProfile

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
    if profile.lifespan is not None:
        policies.append(Policy.Lifespan(lifespan=duration(seconds=profile.lifespan)))
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
class ReaderEntry:
    """A reader the dispatch thread drains, and what to do with its samples."""

    reader: DataReader
    sample_type: type
    on_samples: Callable[[list[Any]], None]
    condition: Any = None
    closed: bool = False



class DdsParticipant:
    """A domain participant with ROS graph bookkeeping; `close()` deletes every entity it made."""

    def __init__(self, domain_id: int, config_xml: str | None, enclave: str, types: DdsTypeRegistry, node_name: str,
                 namespace: str) -> None:
        self.types = types
        self._domain_id = domain_id
        DOMAINS.acquire(domain_id, config_xml)
        try:
            user_data = Qos(Policy.Userdata(data=f"enclave={enclave};".encode()))
            self.participant = DomainParticipant(domain_id, qos=user_data)
        except Exception:
            DOMAINS.release(domain_id)
            raise
        self._lock = threading.RLock()
        self._topics: dict[str, Topic] = {}
        self._readers: list[ReaderEntry] = []
        self._closed = False
        self._client_service_ids = itertools.count(1)
        self.graph = RosGraphAnnouncer(self.participant, types, node_name, namespace, self.qos_for)
        self.graph.publish()
        self._waitset = WaitSet(self.participant)
        self._wakeup = GuardCondition(self.participant)
        self._waitset.attach(self._wakeup)
        self._thread = threading.Thread(target=self._dispatch_loop, name=f"dds-{node_name}", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

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

    def type_hash(self, rostype: str) -> str:
        return self.types.typestore.hash_rihs01(rostype)

    def qos_for(self, profile: QosProfile, rostype: str, writer: bool, extra_user_data: str) -> Qos:
        return dds_qos(profile, writer=writer, user_data=f"{extra_user_data}typehash={self.type_hash(rostype)};")

    def topic(self, dds_name: str, cls: type) -> Topic:
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

    def create_writer(self, dds_name: str, msgtype: str, qos: QosProfile, *, sample_type: type | None = None,
                      hash_type: str | None = None, extra_user_data: str = "") -> tuple[DataWriter, type]:
        return self._endpoint(DataWriter, dds_name, msgtype, qos, sample_type, hash_type, extra_user_data)

    def create_reader(self, dds_name: str, msgtype: str, qos: QosProfile, *, sample_type: type | None = None,
                      hash_type: str | None = None, extra_user_data: str = "") -> tuple[DataReader, type]:
        return self._endpoint(DataReader, dds_name, msgtype, qos, sample_type, hash_type, extra_user_data)

    def _endpoint(self, kind: type, dds_name: str, msgtype: str, qos: QosProfile, sample_type: type | None,
                  hash_type: str | None, extra_user_data: str) -> tuple[Any, type]:
        """A writer or reader on the topic (created once per name), announced in the ROS graph with the ROS QoS
        and type hash in its user data."""
        cls = sample_type or self.types.idl_type(msgtype)
        topic = self.topic(dds_name, cls)
        is_writer = kind is DataWriter
        endpoint = kind(self.participant, topic, self.qos_for(qos, hash_type or msgtype, is_writer, extra_user_data))
        self.graph.add(endpoint.get_guid().bytes, writer=is_writer)
        return endpoint, cls

    def delete_writer(self, writer: DataWriter) -> None:
        with self._lock:
            if self._closed:
                return
            self.graph.remove(writer.get_guid().bytes, writer=True)
            writer.__del__()

    def delete_reader(self, reader: DataReader) -> None:
        with self._lock:
            if self._closed:
                return
            self.graph.remove(reader.get_guid().bytes, writer=False)
            reader.__del__()

    def register_reader(
        self, reader: DataReader, sample_type: type, on_samples: Callable[[list[Any]], None]
    ) -> ReaderEntry:
        entry = ReaderEntry(reader, sample_type, on_samples, ReadCondition(reader, ANY_SAMPLE_STATE))
        with self._lock:
            self._check_open()
            self._waitset.attach(entry.condition)
            self._readers.append(entry)
        self._wakeup.set(True)
        return entry

    def unregister_reader(self, entry: ReaderEntry) -> None:
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

    def next_client_service_id(self) -> bytes:
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

    def _drain(self, entry: ReaderEntry) -> None:
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
