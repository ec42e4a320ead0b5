"""The one interface every ROS edge speaks: publish, subscribe, make messages, tell the time, call services.

Three backends implement it: `DdsTransport` (cyclonedds, a ROS 2 participant without rclpy),
`BagTransport` (rosbag2 replay/record) and `RclpyTransport` (a real ROS 2 node). Messages are whatever the
backend uses natively (DDS structs, rosbags dataclasses, rclpy messages); the `msgs` converters read any of
them by field name and build them through `new_message`, so node code is the same for all three.

Callbacks never take the transport down: a `MessageError` raised by a callback is counted in
`message_errors` (per topic and problem), any other exception is logged and counted in `callback_failures`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from typing import Any

from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.typestore import service_message_types
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile

log = logging.getLogger(__name__)

MessageCallback = Callable[[Any], None]
ServiceHandler = Callable[[Any], Any]  # request message -> response message


class TransportError(RuntimeError):
    """A transport could not do what was asked (bad topic, type mismatch, closed transport)."""


class ServiceUnavailable(TransportError, TimeoutError):
    """A service call got no response in time."""


class Publisher(ABC):
    topic: str
    msgtype: str

    @abstractmethod
    def publish(self, msg: Any) -> None:
        """Send one message (a message from `new_message`; other objects with the same fields are converted)."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release the publisher."""


class Subscription(ABC):
    topic: str
    msgtype: str

    @abstractmethod
    def close(self) -> None:
        """Stop delivering messages."""


class ServiceServer(ABC):
    name: str
    srvtype: str

    @abstractmethod
    def close(self) -> None: ...


class ServiceClient(ABC):
    name: str
    srvtype: str

    @abstractmethod
    def call(self, request: Any, timeout: float = 5.0) -> Any:
        """Send `request` and block for the response; raises ServiceUnavailable after `timeout` seconds."""

    @abstractmethod
    def wait_for_service(self, timeout: float = 5.0) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...


class Transport(ABC):
    """Publish/subscribe/services for one node; see the module docstring."""

    def __init__(self) -> None:
        self.message_errors = MessageErrorCounter()
        self.callback_failures: Counter[str] = Counter()
        self._failures_lock = threading.Lock()

    @abstractmethod
    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher: ...

    @abstractmethod
    def subscribe(
        self, topic: str, msgtype: str, callback: MessageCallback, qos: QosProfile = DEFAULT_QOS
    ) -> Subscription: ...

    @abstractmethod
    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        """A message of `msgtype` ('pkg/msg/Type' or 'pkg/Type') with ROS defaults for fields not given."""

    @abstractmethod
    def now(self) -> float:
        """Current time in seconds: wall clock live, the recorded time of the current message in replay."""

    @abstractmethod
    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer: ...

    @abstractmethod
    def client(self, name: str, srvtype: str) -> ServiceClient: ...

    @abstractmethod
    def close(self) -> None: ...

    def new_request(self, srvtype: str, /, **fields: Any) -> Any:
        return self.new_message(service_message_types(srvtype)[0], **fields)

    def new_response(self, srvtype: str, /, **fields: Any) -> Any:
        return self.new_message(service_message_types(srvtype)[1], **fields)

    def _deliver(self, topic: str, callback: MessageCallback, msg: Any) -> None:
        """Run a user callback with the error policy of the module docstring."""
        try:
            callback(msg)
        except MessageError as error:
            self.message_errors.record(error, topic)
        except Exception:
            with self._failures_lock:
                self.callback_failures[topic] += 1
            log.exception("callback for %s raised", topic)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
