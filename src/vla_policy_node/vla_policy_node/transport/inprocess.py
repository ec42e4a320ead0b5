"""Several nodes in one process on one simulated clock: `InProcessBus`.

    bus = InProcessBus()
    sim_t, policy_t = bus.transport("sim_arm_driver"), bus.transport("vla_policy")
    ... build the nodes on their transports, then: bus.clock = t; node.step(); ...

Each node gets its own Transport view (its own name, so `~/` names resolve per node) onto shared topics and
services; `publish` delivers synchronously to every subscription of the topic, in subscription order. Nodes
then run exactly their live code, only faster than real time and deterministically: the closed-loop
evaluation and the demonstration recorder drive the simulated arm, the policy runtime and the mux this way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from vla_policy_node.bagtools.virtual_transport import VirtualClockTransport
from vla_policy_node.msgs.typestore import default_typestore, normalize_msgtype
from vla_policy_node.transport.base import Publisher
from vla_policy_node.transport.local import LocalEndpoints
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile


@dataclass(eq=False)
class _BusPublisher(Publisher):
    topic: str
    transport: BusTransport

    def publish(self, msg: Any) -> None:
        self.transport.deliver(self.topic, msg)


class InProcessBus:
    """The shared clock (seconds), topics and services of the nodes in this process."""

    def __init__(self, clock: float = 0.0) -> None:
        self.clock = clock
        self.typestore = default_typestore()
        self.endpoints = LocalEndpoints("process")
        self.published: dict[str, int] = defaultdict(int)

    def transport(self, node_name: str, namespace: str = "/") -> BusTransport:
        return BusTransport(self, node_name, namespace)


class BusTransport(VirtualClockTransport):
    """One node's view of an InProcessBus."""

    def __init__(self, bus: InProcessBus, node_name: str, namespace: str = "/") -> None:
        super().__init__(bus.typestore, node_name, namespace, endpoints=bus.endpoints)
        self.bus = bus

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        normalize_msgtype(msgtype)
        return _BusPublisher(self.resolve(topic), self)

    def deliver(self, topic: str, msg: Any) -> int:
        self.bus.published[topic] += 1
        return super().deliver(topic, msg)

    def now(self) -> float:
        return self.bus.clock

    def close(self) -> None:
        """Closes this node's view only (its subscriptions close with their owners)."""
