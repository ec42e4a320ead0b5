"""A Transport on a virtual clock: the caller sets the time and hands messages to the node's own callbacks.

A node runtime subscribes, publishes and serves exactly as it does live; here `now()` is
whatever its owner says (a simulated clock), subscriptions run only when the owner delivers a message, and
publications go to per-topic sinks (or nowhere), so nothing accumulates over a long bag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rosbags.typesys.store import Typestore

from vla_policy_node.msgs.typestore import default_typestore, new_rosbags_message, normalize_msgtype
from vla_policy_node.transport.base import (
    MessageCallback,
    Publisher,
    ServiceClient,
    ServiceHandler,
    ServiceServer,
    Subscription,
    Transport,
)
from vla_policy_node.transport.local import LocalEndpoints, LocalService, LocalSubscription
from vla_policy_node.transport.names import resolve_name
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile

Sink = Callable[[str, Any], None]


@dataclass(eq=False)
class _Publisher(Publisher):
    topic: str
    msgtype: str
    transport: VirtualClockTransport

    def publish(self, msg: Any) -> None:
        sink = self.transport.sinks.get(self.topic)
        if sink is not None:
            sink(self.topic, msg)


class VirtualClockTransport(Transport):
    """`clock` is the current time in seconds; `deliver(topic, msg)` runs the topic's subscriptions."""

    def __init__(self, typestore: Typestore | None = None, node_name: str = "vla_policy", namespace: str = "/",
                 endpoints: LocalEndpoints | None = None):
        super().__init__()
        self.typestore = typestore or default_typestore()
        self.node_name = node_name
        self.namespace = namespace
        self.clock = 0.0
        self.endpoints = endpoints or LocalEndpoints("replay")
        self.subscribed_types: dict[str, str] = {}
        self.sinks: dict[str, Sink] = {}

    @property
    def subscriptions(self) -> dict[str, list[LocalSubscription]]:
        return self.endpoints.subscriptions

    @property
    def services(self) -> dict[str, LocalService]:
        return self.endpoints.services

    def resolve(self, name: str) -> str:
        return resolve_name(name, self.namespace, self.node_name)

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        return _Publisher(self.resolve(topic), normalize_msgtype(msgtype), self)

    def subscribe(
        self, topic: str, msgtype: str, callback: MessageCallback, qos: QosProfile = DEFAULT_QOS
    ) -> Subscription:
        sub = self.endpoints.subscribe(self.resolve(topic), normalize_msgtype(msgtype), callback)
        self.subscribed_types[sub.topic] = sub.msgtype
        return sub

    def deliver(self, topic: str, msg: Any) -> int:
        """Run every subscription of `topic` on `msg` (the transport's error policy applies); how many ran."""
        subs = self.endpoints.subscribers(topic)
        for sub in subs:
            self._deliver(topic, sub.callback, msg)
        return len(subs)

    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        return new_rosbags_message(self.typestore, msgtype, **fields)

    def now(self) -> float:
        return self.clock

    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer:
        return self.endpoints.serve(self.resolve(name), srvtype, handler)

    def client(self, name: str, srvtype: str) -> ServiceClient:
        return self.endpoints.client(self.resolve(name), srvtype)

    def close(self) -> None:
        self.endpoints.clear()
        self.sinks.clear()
