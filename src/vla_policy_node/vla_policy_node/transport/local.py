"""The subscription and service registry of transports that deliver within this process.

Bag replay, the virtual-clock replay and the in-process bus all hand messages to callbacks and answer service
calls locally; one registry keeps closing, delivering and calling identical across them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from vla_policy_node.transport.base import (
    MessageCallback,
    ServiceClient,
    ServiceHandler,
    ServiceServer,
    ServiceUnavailable,
    Subscription,
)


@dataclass(eq=False)
class LocalSubscription(Subscription):
    topic: str
    msgtype: str
    callback: MessageCallback
    endpoints: LocalEndpoints

    def close(self) -> None:
        subs = self.endpoints.subscriptions.get(self.topic, [])
        if self in subs:
            subs.remove(self)


@dataclass(eq=False)
class LocalService(ServiceServer):
    name: str
    srvtype: str
    handler: ServiceHandler
    endpoints: LocalEndpoints

    def close(self) -> None:
        self.endpoints.services.pop(self.name, None)


@dataclass(eq=False)
class LocalClient(ServiceClient):
    """Calls a service registered in the same registry (there is no remote server to reach)."""

    name: str
    srvtype: str
    endpoints: LocalEndpoints

    def wait_for_service(self, timeout: float = 5.0) -> bool:
        return self.name in self.endpoints.services

    def call(self, request: Any, timeout: float = 5.0) -> Any:
        server = self.endpoints.services.get(self.name)
        if server is None:
            raise ServiceUnavailable(f"no service {self.name} in this {self.endpoints.label}")
        return server.handler(request)

    def close(self) -> None:
        pass


class LocalEndpoints:
    """Subscriptions by topic and service servers by name; `label` names the context in errors."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.subscriptions: dict[str, list[LocalSubscription]] = defaultdict(list)
        self.services: dict[str, LocalService] = {}

    def subscribe(self, topic: str, msgtype: str, callback: MessageCallback) -> LocalSubscription:
        sub = LocalSubscription(topic, msgtype, callback, self)
        self.subscriptions[topic].append(sub)
        return sub

    def serve(self, name: str, srvtype: str, handler: ServiceHandler) -> LocalService:
        server = LocalService(name, srvtype, handler, self)
        self.services[name] = server
        return server

    def client(self, name: str, srvtype: str) -> LocalClient:
        return LocalClient(name, srvtype, self)

    def subscribers(self, topic: str) -> list[LocalSubscription]:
        """A snapshot, so callbacks may subscribe or close while a message is delivered."""
        return list(self.subscriptions.get(topic, ()))

    def clear(self) -> None:
        self.subscriptions.clear()
        self.services.clear()
