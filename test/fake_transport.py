"""An in-memory Transport for node tests: publishes into a list, `inject` delivers to subscribers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vla_policy_node.msgs import rosbags_factory
from vla_policy_node.transport.base import Publisher, Subscription, Transport


class _Publisher(Publisher):
    def __init__(self, transport: RecordingTransport, topic: str, msgtype: str) -> None:
        self.topic, self.msgtype, self._transport = topic, msgtype, transport

    def publish(self, msg: Any) -> None:
        self._transport.sent.append((self.topic, self.msgtype, msg))


class _Subscription(Subscription):
    def __init__(self, transport: RecordingTransport, topic: str, msgtype: str,
                 callback: Callable[[Any], None]) -> None:
        self.topic, self.msgtype, self._transport, self._callback = topic, msgtype, transport, callback

    def close(self) -> None:
        t = self._transport
        t.callbacks[self.topic] = [entry for entry in t.callbacks.get(self.topic, []) if entry[1] is not self._callback]
        if t.callbacks[self.topic]:
            t.subscribers[self.topic] = t.callbacks[self.topic][-1]
        else:
            t.callbacks.pop(self.topic)
            t.subscribers.pop(self.topic, None)


class RecordingTransport(Transport):
    """sent: (topic, msgtype, message) in publish order; qos: topic -> the QoS it was opened with; subscribers:
    topic -> (msgtype, callback) of its latest subscription; `inject` delivers to every subscription of the topic
    (as DDS does: two cameras may read one topic)."""

    def __init__(self, clock: float = 42.0) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, Any]] = []
        self.subscribers: dict[str, tuple[str, Callable[[Any], None]]] = {}
        self.callbacks: dict[str, list[tuple[str, Callable[[Any], None]]]] = {}
        self.qos: dict[str, Any] = {}
        self.clock = clock
        self._new = rosbags_factory()

    def publisher(self, topic: str, msgtype: str, qos: Any = None) -> Publisher:
        self.qos[topic] = qos
        return _Publisher(self, topic, msgtype)

    def subscribe(self, topic: str, msgtype: str, callback: Callable[[Any], None], qos: Any = None) -> Subscription:
        self.qos[topic] = qos
        self.subscribers[topic] = (msgtype, callback)
        self.callbacks.setdefault(topic, []).append((msgtype, callback))
        return _Subscription(self, topic, msgtype, callback)

    def inject(self, topic: str, msg: Any) -> None:
        if topic not in self.callbacks:
            raise KeyError(topic)
        for msgtype, callback in list(self.callbacks[topic]):
            assert msg.__msgtype__ == msgtype, f"{topic} carries {msgtype}, got {msg.__msgtype__}"
            self._deliver(topic, callback, msg)

    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        return self._new(msgtype, **fields)

    def now(self) -> float:
        return self.clock

    def service(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def client(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass
