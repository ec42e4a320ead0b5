"""rosbag2 files without ROS: write (mcap or sqlite3), read in time order, and replay through the Transport API.

Writing goes through rosbags with our typestore, so every topic carries its message definition and RIHS01
type hash and `metadata.yaml` has the QoS profiles, which is what `ros2 bag info` / `ros2 bag play` need.
Reading checks each topic's recorded type hash against the current definition: a bag recorded with an
older `vla_msgs` definition is refused with a clear error instead of being decoded into garbage.

`BagTransport` replays a bag into the same subscribe callbacks the live transports use (at recorded timing
scaled by `speed`, or as fast as possible with `speed=None`); `now()` is the recorded time of the message
being delivered (like `ros2 bag play --clock` with use_sim_time). What the node publishes can be written to an
output bag and/or kept in memory for evaluation.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_types_from_idl, get_types_from_msg
from rosbags.typesys.store import Typestore

from vla_policy_node.msgs.typestore import (
    build_typestore,
    default_typestore,
    new_rosbags_message,
    normalize_msgtype,
    service_message_types,
    to_rosbags,
)
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
from vla_policy_node.transport.local import LocalEndpoints
from vla_policy_node.transport.mcap_zero_copy import ZeroCopyMcap, supported
from vla_policy_node.transport.names import resolve_name
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_ZERO = QosTime(sec=0, nsec=0)
_INFINITE = QosTime(sec=2147483647, nsec=4294967295)  # how rosbag2 writes RMW_DURATION_INFINITE


class BagError(RuntimeError):
    """A bag that cannot be written or read (missing, corrupt, unknown storage, incompatible types)."""


class BagMessage(NamedTuple):
    """One message read (immutable; a named tuple: one is made per message read, in a third of a frozen
    dataclass's time)."""

    topic: str
    msgtype: str
    timestamp_ns: int  # record (receive) time
    msg: Any  # rosbags dataclass (None for a topic read raw: `BagReader.deserialize` gives it)
    raw: Any = None  # the CDR bytes, for a topic read raw (valid while the iteration is at this message)

    @property
    def stamp(self) -> float:
        return self.timestamp_ns * 1e-9


def rosbag_qos(profile: QosProfile) -> Qos:
    """Our QoS profile as rosbag2 metadata records it (offered_qos_profiles)."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=profile.depth,
        reliability=QosReliability.RELIABLE if profile.reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if profile.transient_local else QosDurability.VOLATILE,
        deadline=_INFINITE,
        lifespan=_INFINITE,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE,
        avoid_ros_namespace_conventions=False,
    )


class _OwnerThread:
    """Runs every call on one thread of its own and waits for it: sqlite3 objects may only be used on the
    thread that made them (rclpy's executor and the DDS dispatch thread deliver messages on others), and one
    writer thread also serialises writes arriving from several callback threads at once."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if threading.current_thread() is self._thread:
            return fn(*args)
        done = threading.Event()
        box: dict[str, Any] = {}
        self._queue.put((fn, args, done, box))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, done, box = item
            try:
                box["value"] = fn(*args)
            except BaseException as error:  # handed to the caller
                box["error"] = error
            finally:
                done.set()

    def stop(self) -> None:
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10.0)


class BagWriter:
    """Append messages to a new rosbag2 directory. Use as a context manager (metadata is written on close).
    Thread-safe: the storage is only touched on the writer's own thread (see _OwnerThread)."""

    def __init__(self, path: str | Path, storage: str = "mcap", typestore: Typestore | None = None) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; use one of {sorted(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        self.typestore = typestore or default_typestore()
        self._owner = _OwnerThread(f"bag-writer-{self.path.name}")

        def open_writer() -> Writer:
            writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
            writer.open()
            return writer

        try:
            self._writer = self._owner.call(open_writer)
        except Exception as error:
            self._owner.stop()
            raise BagError(f"cannot create bag {self.path}: {error}") from error
        self._connections: dict[str, Any] = {}
        self._closed = False

    def add_topic(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> None:
        """Declare a topic (optional: `write` declares it on first use with the default QoS)."""
        self._owner.call(self._add_topic, topic, normalize_msgtype(msgtype), qos)

    def _add_topic(self, topic: str, msgtype: str, qos: QosProfile) -> None:
        existing = self._connections.get(topic)
        if existing is not None:
            if existing.msgtype != msgtype:
                raise BagError(f"topic {topic} already recorded as {existing.msgtype}, not {msgtype}")
            return
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=[rosbag_qos(qos)]
        )

    def write(self, topic: str, msgtype: str, msg: Any, timestamp_ns: int) -> None:
        """Serialize and append `msg` (any object with the ROS field names) at `timestamp_ns`."""
        msgtype = normalize_msgtype(msgtype)
        self.add_topic(topic, msgtype)
        data = self.typestore.serialize_cdr(to_rosbags(self.typestore, msgtype, msg), msgtype)
        self.write_raw(topic, msgtype, data, timestamp_ns)

    def write_raw(self, topic: str, msgtype: str, cdr: bytes | memoryview, timestamp_ns: int) -> None:
        self._owner.call(self._write_raw, topic, msgtype, cdr, int(timestamp_ns))

    def _write_raw(self, topic: str, msgtype: str, cdr: bytes | memoryview, timestamp_ns: int) -> None:
        if self._closed:
            raise BagError(f"bag {self.path} is closed")
        self._add_topic(topic, normalize_msgtype(msgtype), DEFAULT_QOS)
        self._writer.write(self._connections[topic], timestamp_ns, cdr)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._owner.call(self._writer.close)
            finally:
                self._owner.stop()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_bag(path: Path) -> None:
    """BagError unless `path` exists (before a reader opens it, or before a tool writes anything for it)."""
    if not path.exists():
        raise BagError(f"bag {path} does not exist")


class BagReader:
    """Open a rosbag2 directory (mcap or sqlite3) and iterate its messages in time order."""

    def __init__(self, path: str | Path, typestore: Typestore | None = None, *, zero_copy: bool = True) -> None:
        """zero_copy: chunk-indexed mcap files are read through a memory map (payloads are views into it, see
        `mcap_zero_copy`); False reads everything through rosbags."""
        self.path = Path(path)
        require_bag(self.path)
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as error:
            raise BagError(f"cannot open bag {self.path}: {type(error).__name__}: {error}") from error
        self.typestore = self._typestore_for_bag(typestore or default_typestore())
        self._zero_copy: ZeroCopyMcap | None = None
        if zero_copy and supported(self._reader.storage):
            try:
                self._zero_copy = ZeroCopyMcap(self._reader.storage)
            except (OSError, ValueError):  # e.g. a file that cannot be mapped: rosbags reads it
                self._zero_copy = None

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def message_count(self) -> int:
        return self._reader.message_count

    @property
    def message_counts(self) -> dict[str, int]:
        """topic -> number of messages, as the bag's metadata states them."""
        counts: dict[str, int] = defaultdict(int)
        for connection in self._reader.connections:
            counts[connection.topic] += connection.msgcount
        return dict(counts)

    @property
    def start_ns(self) -> int:
        return self._reader.start_time

    @property
    def end_ns(self) -> int:
        return self._reader.end_time

    def messages(self, topics: Iterable[str] | None = None, raw_topics: Collection[str] = ()) -> Iterator[BagMessage]:
        """Messages of `topics` (default: all), oldest first, deserialized with the bag-checked typestore.
        Those of `raw_topics` come undeserialized (`raw`; for a caller with a faster decoder of its own, which
        falls back on `deserialize`)."""
        wanted = set(topics) if topics is not None else None
        connections = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if wanted is not None and not connections:
            return
        source = (self._zero_copy.messages(connections) if self._zero_copy is not None
                  else self._reader.messages(connections=connections))
        deserialize = self.typestore.deserialize_cdr
        try:
            for connection, timestamp, raw in source:
                if raw_topics and connection.topic in raw_topics:
                    yield BagMessage(connection.topic, connection.msgtype, timestamp, None, raw)
                    continue
                try:
                    msg = deserialize(raw, connection.msgtype)
                except Exception as error:
                    raise BagError(
                        f"{self.path}: cannot decode {connection.msgtype} on {connection.topic} "
                        f"at {timestamp} ns: {error}"
                    ) from error
                yield BagMessage(connection.topic, connection.msgtype, timestamp, msg)
        except BagError:
            raise
        except Exception as error:
            raise BagError(f"{self.path}: corrupt bag data: {type(error).__name__}: {error}") from error

    def deserialize(self, item: BagMessage) -> Any:
        """The message of a raw `item` (as `messages` would have given it, BagError included)."""
        if item.msg is not None:
            return item.msg
        try:
            return self.typestore.deserialize_cdr(item.raw, item.msgtype)
        except Exception as error:
            raise BagError(f"{self.path}: cannot decode {item.msgtype} on {item.topic} at {item.timestamp_ns} ns: "
                           f"{error}") from error

    def close(self) -> None:
        if self._zero_copy is not None:
            self._zero_copy.close()
        self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _typestore_for_bag(self, store: Typestore) -> Typestore:
        """`store`, or a fresh one extended with the bag's own definitions for types `store` lacks."""
        unknown = []
        for connection in self._reader.connections:
            if connection.msgtype in store.fielddefs:
                have = store.hash_rihs01(connection.msgtype)
                if connection.digest and connection.digest.startswith("RIHS01_") and connection.digest != have:
                    raise BagError(
                        f"{self.path}: topic {connection.topic} was recorded with a different definition of "
                        f"{connection.msgtype} (hash {connection.digest}, current {have})"
                    )
            else:
                unknown.append(connection)
        if not unknown:
            return store
        extended = build_typestore()
        for connection in unknown:
            data = connection.msgdef.data
            if not data:
                raise BagError(f"{self.path}: no definition recorded for unknown type {connection.msgtype}")
            try:
                if data.startswith("=" * 80 + "\nIDL: "):
                    types = {}
                    for chunk in data.split("=" * 80 + "\n")[1:]:
                        types.update(get_types_from_idl(chunk.split("\n", 1)[1]))
                else:
                    types = get_types_from_msg(data, connection.msgtype)
                extended.register(types)
            except Exception as error:
                raise BagError(
                    f"{self.path}: cannot parse the recorded definition of {connection.msgtype}: {error}"
                ) from error
        return extended


def read_bag(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Convenience: iterate a bag's messages (optionally only `topics`) in time order."""
    with BagReader(path) as reader:
        yield from reader.messages(topics)


# ---------------------------------------------------------------------------------------------------------
# Replay as a Transport


@dataclass(eq=False)
class _BagPublisher(Publisher):
    topic: str
    msgtype: str
    transport: BagTransport

    def publish(self, msg: Any) -> None:
        self.transport._record(self.topic, self.msgtype, msg)


class BagTransport(Transport):
    """Replays `input_path` into subscriptions; records publications to `output_path` and/or memory."""

    def __init__(
        self,
        input_path: str | Path | None = None,
        output_path: str | Path | None = None,
        *,
        storage: str = "mcap",
        keep_published: bool = False,
        typestore: Typestore | None = None,
        node_name: str = "vla_node",
        namespace: str = "/",
    ) -> None:
        super().__init__()
        self.typestore = typestore or default_typestore()
        self.node_name = node_name
        self.namespace = namespace
        self._reader = BagReader(input_path, self.typestore) if input_path is not None else None
        self._writer = BagWriter(output_path, storage, self.typestore) if output_path is not None else None
        self.keep_published = keep_published
        self.published: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self._endpoints = LocalEndpoints("bag replay")
        self._now_ns = self._reader.start_ns if self._reader is not None else 0
        self._closed = False

    def resolve(self, name: str) -> str:
        return resolve_name(name, self.namespace, self.node_name)

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        name, msgtype = self.resolve(topic), normalize_msgtype(msgtype)
        if self._writer is not None:
            self._writer.add_topic(name, msgtype, qos)
        return _BagPublisher(name, msgtype, self)

    def subscribe(
        self, topic: str, msgtype: str, callback: MessageCallback, qos: QosProfile = DEFAULT_QOS
    ) -> Subscription:
        name, msgtype = self.resolve(topic), normalize_msgtype(msgtype)
        recorded = self._reader.topics.get(name) if self._reader is not None else None
        if recorded is not None and recorded != msgtype:
            raise TransportError(f"bag topic {name} holds {recorded}, subscription asks for {msgtype}")
        sub = self._endpoints.subscribe(name, msgtype, callback)
        return sub

    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        return new_rosbags_message(self.typestore, msgtype, **fields)

    def now(self) -> float:
        return self._now_ns * 1e-9

    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer:
        service_message_types(srvtype)  # validates the name
        server = self._endpoints.serve(self.resolve(name), srvtype, handler)
        return server

    def client(self, name: str, srvtype: str) -> ServiceClient:
        return self._endpoints.client(self.resolve(name), srvtype)

    def play(
        self,
        speed: float | None = 1.0,
        *,
        start: float | None = None,
        stop: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> int:
        """Deliver the subscribed topics' messages in time order; returns how many were delivered.

        speed: 1.0 = recorded timing, 2.0 = twice as fast, None (or <= 0) = as fast as possible.
        start/stop: bag-relative seconds window. should_stop: polled between messages.
        """
        if self._reader is None:
            raise TransportError("BagTransport has no input bag to play")
        topics = [topic for topic, subs in self._endpoints.subscriptions.items() if subs]
        if not topics:
            return 0
        origin_ns = self._reader.start_ns
        wall_origin: float | None = None
        bag_origin_ns = 0
        delivered = 0
        for item in self._reader.messages(topics):
            offset = (item.timestamp_ns - origin_ns) * 1e-9
            if start is not None and offset < start:
                continue
            if stop is not None and offset >= stop:
                break
            if should_stop is not None and should_stop():
                break
            if speed is not None and speed > 0:
                if wall_origin is None:
                    wall_origin, bag_origin_ns = time.monotonic(), item.timestamp_ns
                target = wall_origin + (item.timestamp_ns - bag_origin_ns) * 1e-9 / speed
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._now_ns = item.timestamp_ns
            for sub in self._endpoints.subscribers(item.topic):
                self._deliver(item.topic, sub.callback, item.msg)
                delivered += 1
        return delivered

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._reader is not None:
            self._reader.close()

    def _record(self, topic: str, msgtype: str, msg: Any) -> None:
        if self._writer is not None:
            self._writer.write(topic, msgtype, msg, self._now_ns)
        if self.keep_published:
            self.published[topic].append((self.now(), msg))
