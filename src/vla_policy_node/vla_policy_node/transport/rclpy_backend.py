"""RclpyTransport: the Transport interface on a real rclpy node, for robots with ROS 2 installed.

Deliberately thin: publishers, subscriptions, services and clients are the node's own; the only logic here is
turning numpy values into what rclpy message setters accept (array.array for `sequence<T>`, numpy for `T[N]`,
bytes for `octet`) and copying foreign messages (rosbags dataclasses, DDS structs) into rclpy classes. rclpy is
imported lazily. Tested against the real rclpy in test/ros2/.

Threading: callbacks and service handlers run in whatever executor spins `node`. `RclpyTransport.create()`
makes its own node (a lifecycle node on request) and spins it on a background MultiThreadedExecutor, so
`ServiceClient.call` can block, except the subscriptions made through `subscribe`: a thread of their own waits
on them alone and runs their callbacks (transport/rclpy_executor.py: rclpy's executor rebuilt its wait set of
every service in Python on each message, the GIL a 250 Hz control tick waited for).

Destroying while spinning: rclpy's executor adds every waitable (a publisher's or subscription's QoS event
handlers, action servers and clients) from a snapshot taken before the wait set is built, without the
InvalidHandle guard it has for plain subscriptions and timers; an entity destroyed in that window killed the spin
thread ("Failed to add 'rcl_action_server_t' to wait set: action server pointer is invalid", "cannot use
Destroyable" in event_handler.add_to_wait_set): at lifecycle cleanup and at shutdown. So our publishers and
subscriptions have no event-handler waitables (rclpy's default incompatible-QoS warnings are not created), and
action servers and clients are destroyed only once the executor has stopped (`destroy_when_stopped`).

Shutdown: `create()` initialises rclpy without its signal handlers. With them, SIGINT shut the context down
under the running node, so the node's own timers and threads then published through destroyed handles
("cannot use Destroyable because destruction was requested"); instead the node executable's SIGINT handler
stops its runtime first and `close()` then shuts down executor, node and context in that order.
"""

from __future__ import annotations

import array
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from vla_policy_node.msgs.typestore import normalize_msgtype, normalize_service_type
from vla_policy_node.transport.base import (
    MessageCallback,
    Publisher,
    ServiceClient,
    ServiceHandler,
    ServiceServer,
    ServiceUnavailable,
    Subscription,
    Transport,
)
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile
from vla_policy_node.transport.rclpy_executor import split_executor_class
from vla_policy_node.transport.rosout import InstalledHandler, RcutilsForwarder

# rosidl type names (get_fields_and_field_types) -> (numpy dtype, array.array typecode)
_NUMERIC = {
    "double": (np.float64, "d"),
    "float": (np.float32, "f"),
    "int8": (np.int8, "b"),
    "uint8": (np.uint8, "B"),
    "int16": (np.int16, "h"),
    "uint16": (np.uint16, "H"),
    "int32": (np.int32, "i"),
    "uint32": (np.uint32, "I"),
    "int64": (np.int64, "q"),
    "uint64": (np.uint64, "Q"),
}


@cache
def message_class(msgtype: str) -> type[Any]:
    """rclpy class for 'pkg/msg/T', or for a service's 'pkg/srv/S_Request' / 'pkg/srv/S_Response' (looked up
    once per type: rosidl's lookup imports by name each time, a third of a 250 Hz command's encoding)."""
    from rosidl_runtime_py.utilities import get_message, get_service

    msgtype = normalize_msgtype(msgtype)
    pkg, kind, name = msgtype.split("/")
    if kind == "srv":
        base, _, part = name.rpartition("_")
        return getattr(get_service(f"{pkg}/srv/{base}"), part)
    return get_message(msgtype)


def service_class(srvtype: str) -> type[Any]:
    from rosidl_runtime_py.utilities import get_service

    return get_service(normalize_service_type(srvtype))


def rclpy_qos(profile: QosProfile) -> Any:
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    extra = {} if profile.lifespan is None else {"lifespan": Duration(nanoseconds=round(profile.lifespan * 1e9))}
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=profile.depth,
        reliability=ReliabilityPolicy.RELIABLE if profile.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if profile.transient_local else DurabilityPolicy.VOLATILE,
        **extra,
    )


def _base_type(field_type: str) -> tuple[str, bool]:
    """'sequence<double, 5>' -> ('double', True); 'geometry_msgs/Point[3]' -> ('geometry_msgs/Point', True)."""
    collection = field_type.startswith("sequence<") or field_type.endswith("]")
    base = field_type[len("sequence<") : -1].split(",")[0].strip() if field_type.startswith("sequence<") else field_type
    return base.split("[")[0], collection


def _field_value(field_type: str, value: Any) -> Any:
    """Convert one value to what the rclpy setter of a field typed `field_type` accepts."""
    base, collection = _base_type(field_type)
    if collection and base in _NUMERIC:
        dtype, code = _NUMERIC[base]
        if field_type.startswith("sequence<"):  # rclpy stores sequences as array.array
            if isinstance(value, array.array) and value.typecode == code:
                return value
            return array.array(code, np.asarray(value, dtype=dtype).tobytes())
        return np.asarray(value, dtype=dtype)  # fixed-size arrays are numpy in rclpy
    if collection:
        return list(value)
    if field_type == "octet" and isinstance(value, int | np.integer):
        return bytes([int(value)])
    if field_type == "boolean":
        return bool(value)
    if field_type in ("double", "float"):
        return float(value)
    if field_type in _NUMERIC:
        return int(value)
    return value


def to_rclpy(msgtype: str, obj: Any) -> Any:
    """Copy any object with ROS field names (rosbags dataclass, DDS struct, dict) into the rclpy class."""
    cls = message_class(msgtype)
    if isinstance(obj, cls):
        return obj
    get = obj.get if isinstance(obj, dict) else (lambda name: getattr(obj, name, None))
    fields = {}
    for name, field_type, nested_type, collection in _fields(msgtype):
        value = get(name)
        if value is None:
            continue
        if nested_type:
            value = [to_rclpy(nested_type, v) for v in value] if collection else to_rclpy(nested_type, value)
        else:
            value = _field_value(field_type, value)
        fields[name] = value
    return cls(**fields)


@cache
def _fields(msgtype: str) -> tuple[tuple[str, str, str, bool], ...]:
    """(name, rosidl type, nested 'pkg/msg/Type' or '', collection) of each field of a message type."""
    out = []
    for name, field_type in message_class(msgtype).get_fields_and_field_types().items():
        base, collection = _base_type(field_type)
        pkg, slash, type_name = base.partition("/")  # nested message(s), named 'pkg/Type' by rosidl
        out.append((name, field_type, f"{pkg}/msg/{type_name}" if slash else "", collection))
    return tuple(out)


@dataclass(eq=False)
class _RclpyPublisher(Publisher):
    topic: str
    msgtype: str
    handle: Any
    node: Any

    def publish(self, msg: Any) -> None:
        self.handle.publish(to_rclpy(self.msgtype, msg))

    def close(self) -> None:
        self.node.destroy_publisher(self.handle)


@dataclass(eq=False)
class _RclpySubscription(Subscription):
    topic: str
    msgtype: str
    handle: Any
    node: Any
    loop: Any = None  # the SubscriptionLoop that waits on it (a node made by `create()`)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.remove(self.handle)
        self.node.destroy_subscription(self.handle)


@dataclass(eq=False)
class _RclpyService(ServiceServer):
    name: str
    srvtype: str
    handle: Any
    node: Any

    def close(self) -> None:
        self.node.destroy_service(self.handle)


@dataclass(eq=False)
class _RclpyClient(ServiceClient):
    name: str
    srvtype: str
    handle: Any
    node: Any

    def wait_for_service(self, timeout: float = 5.0) -> bool:
        return bool(self.handle.wait_for_service(timeout_sec=timeout))

    def call(self, request: Any, timeout: float = 5.0) -> Any:
        """Blocks until the reply arrives; the node must be spun by another thread (see module docstring)."""
        if not self.wait_for_service(timeout):
            raise ServiceUnavailable(f"service {self.name} ({self.srvtype}) not available after {timeout:.1f} s")
        request_type = f"{normalize_service_type(self.srvtype)}_Request"
        future = self.handle.call_async(to_rclpy(request_type, request))
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout) or future.result() is None:
            raise ServiceUnavailable(f"no reply from {self.name} ({self.srvtype}) within {timeout:.1f} s")
        return future.result()

    def close(self) -> None:
        self.node.destroy_client(self.handle)


class RclpyTransport(Transport):
    """Wraps an existing rclpy Node (spun by the caller), or one made by `create()`."""

    def __init__(self, node: Any, *, _owned_executor: Any = None, _spin_thread: threading.Thread | None = None):
        super().__init__()
        self.node = node
        self._executor = _owned_executor
        self._spin_thread = _spin_thread
        self._log_forwarder: InstalledHandler | None = None
        self._deferred: list[Callable[[], None]] = []

    @classmethod
    def create(cls, node_name: str, namespace: str = "", args: list[str] | None = None,
               lifecycle: LifecycleHandlers | None = None, forward_logging: bool = False,
               threads: int | None = None) -> RclpyTransport:
        """Init rclpy if needed (no signal handlers: see the module docstring), make a node (a managed node
        whose transitions call `lifecycle`'s handlers, when given) and spin it on a background executor with
        `threads` threads (default: the CPUs + 2, at least 4: an action goal's execute callback waits in one).
        `forward_logging`: Python log records go to rcutils under the node's name (console and /rosout)
        until `close()` (transport/rosout.py)."""
        import rclpy
        from rclpy.node import Node
        from rclpy.signals import SignalHandlerOptions

        if not rclpy.ok():
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        if lifecycle is not None:
            node = _lifecycle_node_class()(node_name, namespace=namespace, handlers=lifecycle)
        else:
            node = Node(node_name, namespace=namespace)
        executor = split_executor_class()(threads or max(4, (os.cpu_count() or 1) + 2), name=f"rclpy-{node_name}")
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, name=f"rclpy-{node_name}", daemon=True)
        thread.start()
        transport = cls(node, _owned_executor=executor, _spin_thread=thread)
        if forward_logging:
            transport._log_forwarder = InstalledHandler(RcutilsForwarder(node.get_logger().name), exclusive=True)
        return transport

    def publisher(self, topic: str, msgtype: str, qos: QosProfile = DEFAULT_QOS) -> Publisher:
        from rclpy.event_handler import PublisherEventCallbacks

        msgtype = normalize_msgtype(msgtype)
        handle = self.node.create_publisher(message_class(msgtype), topic, rclpy_qos(qos),
                                            event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
        return _RclpyPublisher(handle.topic_name, msgtype, handle, self.node)

    def subscribe(
        self, topic: str, msgtype: str, callback: MessageCallback, qos: QosProfile = DEFAULT_QOS
    ) -> Subscription:
        from rclpy.event_handler import SubscriptionEventCallbacks

        msgtype = normalize_msgtype(msgtype)
        holder: dict[str, str] = {"topic": topic}
        handle = self.node.create_subscription(
            message_class(msgtype), topic, lambda msg: self._deliver(holder["topic"], callback, msg), rclpy_qos(qos),
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False),
        )
        holder["topic"] = handle.topic_name
        loop = getattr(self._executor, "subscriptions", None)
        if loop is not None:
            loop.add(handle)
        return _RclpySubscription(handle.topic_name, msgtype, handle, self.node, loop)

    def new_message(self, msgtype: str, /, **fields: Any) -> Any:
        cls = message_class(msgtype)
        types = cls.get_fields_and_field_types()
        unknown = set(fields) - set(types)
        if unknown:
            raise TypeError(f"{msgtype} has no field(s) {sorted(unknown)}")
        return to_rclpy(msgtype, fields)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def service(self, name: str, srvtype: str, handler: ServiceHandler) -> ServiceServer:
        response_type = f"{normalize_service_type(srvtype)}_Response"

        def serve(request: Any, response: Any) -> Any:
            return to_rclpy(response_type, handler(request))

        handle = self.node.create_service(service_class(srvtype), name, serve)
        return _RclpyService(handle.srv_name, srvtype, handle, self.node)

    def client(self, name: str, srvtype: str) -> ServiceClient:
        handle = self.node.create_client(service_class(srvtype), name)
        return _RclpyClient(handle.srv_name, srvtype, handle, self.node)

    def destroy_when_stopped(self, destroy: Callable[[], None]) -> None:
        """Run `destroy` (an action server's or client's) once this transport's executor has stopped, at
        `close()` (see the module docstring); at once when the caller spins the node."""
        if self._executor is None:
            destroy()
        else:
            self._deferred.append(destroy)

    def close(self) -> None:
        """Stop spinning, destroy the node, shut rclpy down (a node made by `create()`; else nothing)."""
        if self._log_forwarder is not None:
            self._log_forwarder.remove()
            self._log_forwarder = None
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        executor.shutdown(timeout_sec=5.0)
        if self._spin_thread is not None:
            self._spin_thread.join(timeout=5.0)
        for destroy in self._deferred:
            destroy()
        self._deferred = []
        self.node.destroy_node()
        import rclpy

        rclpy.try_shutdown()


@dataclass(frozen=True)
class LifecycleHandlers:
    """What a managed node does on each transition: each returns "" for success or the reason it failed
    (the transition then fails and the node stays where it was; configure's failure leaves it unconfigured)."""

    configure: Callable[[], str]
    activate: Callable[[], str]
    deactivate: Callable[[], str]
    cleanup: Callable[[], str]
    shutdown: Callable[[], str]


def _lifecycle_node_class() -> type:
    """rclpy's LifecycleNode whose transition callbacks call LifecycleHandlers (built lazily: rclpy import)."""
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    class HandlerLifecycleNode(LifecycleNode):
        def __init__(self, node_name: str, *, namespace: str, handlers: LifecycleHandlers) -> None:
            self._handlers = handlers
            super().__init__(node_name, namespace=namespace)

        def _run(self, name: str) -> TransitionCallbackReturn:
            try:
                problem = getattr(self._handlers, name)()
            except Exception as error:  # a transition that raises is a failed transition, not a dead node
                problem = f"{type(error).__name__}: {error}"
            if problem:
                self.get_logger().error(f"{name} failed: {problem}")
                return TransitionCallbackReturn.FAILURE
            return TransitionCallbackReturn.SUCCESS

        def on_configure(self, state: Any) -> TransitionCallbackReturn:
            return self._run("configure")

        def on_activate(self, state: Any) -> TransitionCallbackReturn:
            return self._run("activate")

        def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
            return self._run("deactivate")

        def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
            return self._run("cleanup")

        def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
            return self._run("shutdown")

    return HandlerLifecycleNode
