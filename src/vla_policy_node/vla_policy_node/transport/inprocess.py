"""Several nodes in one process on one simulated clock: `InProcessBus`.

    bus = InProcessBus()
    sim_t, policy_t = bus.transport("sim_arm_driver"), bus.transport("vla_policy")
    ... build the nodes on their transports, then: bus.clock = t; node.step(); ...

Each node gets its own Transport view (its own name, so `~/` names resolve per node) onto shared topics and
services; `publish` delivers synchronously to every subscription of the topic, in subscription order. Nodes
then run exactly their live code, only faster than real time and deterministically: the closed-loop
evaluation and the demonstration recorder drive the simulated arm, the policy runtime and the mux this way.

Latched topics behave as over DDS: a TRANSIENT_LOCAL publisher keeps its last `depth` messages, and a
TRANSIENT_LOCAL subscription gets them when it subscribes (synchronously, inside `subscribe`), so a node
started late still receives e.g. /robot_description. Those messages die with their publisher: `close()` on it
or on its node's transport (a node restarted in the closed loop must not hear its predecessor's last gripper
command).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from vla_policy_node.msgs.typestore import default_typestore, normalize_msgtype
from vla_policy_node.transport.base import MessageCallback, Publisher, Subscription
from vla_policy_node.transport.local import LocalEndpoints
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile
from vla_policy_node.transport.virtual_clock import VirtualClockTransport


@dataclass(eq=False)
class _BusPublisher(Publisher):
    topic: str
    transport: BusTransport
    history: deque[Any] | None = None  # the last `depth` messages, for latched (TRANSIENT_LOCAL) publishers
    closed: bool = field(default=False, init=False)

    def publish(self, msg: Any) -> None:
        if self.history is not None and not self.closed:
            self.history.append(msg)
        self.transport.deliver(self.topic, msg)

    def close(self) -> None:
        """The writer is gone: late joiners no longer get its messages."""
        self.closed = True
        latched = self.transport.bus.latched.get(self.topic, [])
        if self in latched:
            latched.remove(self)


class InProcessBus:
    """The shared clock (seconds), topics and services of the nodes in this process."""

    def __init__(self, clock: float = 0.0) -> None:
        self.clock = clock
        self.typestore = default_typestore()
        self.endpoints = LocalEndpoints("process")
        self.published: dict[str, int] = defaultdict(int)
        self.latched: dict[str, list[_BusPublisher]] = defaultdict(list)  # live TRANSIENT_LOCAL publishers

    def transport(self, node_name: str, namespace: str = "/") -> BusTransport:
        return BusTransport(self, node_name, namespace)


class BusTransport(VirtualClockTransport):
    """One node's view of an InProcessBus."""

    def __init__(self, bus: InProcessBus, node_name: str, namespace: str = "/") -> None:
        super().__init__(bus.typestore, node_name, namespace, endpoints=bus.endpoints)
        self.bus = bus
        self._latched: list[_BusPublisher] = []

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        normalize_msgtype(msgtype)
        if not qos.transient_local:
            return _BusPublisher(self.resolve(topic), self)
        publisher = _BusPublisher(self.resolve(topic), self, deque(maxlen=qos.depth))
        self.bus.latched[publisher.topic].append(publisher)
        self._latched.append(publisher)
        return publisher

    def subscribe(self, topic: str, msgtype: str, callback: MessageCallback,
                  qos: QosProfile = DEFAULT_QOS) -> Subscription:
        """As over DDS: a TRANSIENT_LOCAL subscription first gets what the live latched publishers kept."""
        subscription = super().subscribe(topic, msgtype, callback, qos)
        if qos.transient_local:
            for publisher in list(self.bus.latched.get(self.resolve(topic), ())):
                for msg in list(publisher.history or ()):
                    self._deliver(publisher.topic, callback, msg)
        return subscription

    def deliver(self, topic: str, msg: Any) -> int:
        self.bus.published[topic] += 1
        return super().deliver(topic, msg)

    def now(self) -> float:
        return self.bus.clock

    def close(self) -> None:
        """Closes this node's view only: its latched publishers go (its subscriptions close with their owners)."""
        for publisher in self._latched:
            publisher.close()
        self._latched.clear()
