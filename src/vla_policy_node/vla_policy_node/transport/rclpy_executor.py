"""The executor `RclpyTransport.create` spins its node with: rclpy's MultiThreadedExecutor for services, clients,
timers, guard conditions and waitables, and a thread of its own for the transport's subscriptions.

Why: rclpy's executor (Jazzy) rebuilds its wait set in Python on every wake-up, walking every entity of the node
(the policy node has 11 services, 6 subscriptions, 2 waitables), and a message wakes it about three times (the
wake-up that finds it, then the handler's two guard-condition triggers on the pool thread it was handed to).
At 250 Hz joint states plus 30 Hz cameras that Python held the GIL for about a quarter of the node process's
GIL time, while the control tick thread waited for the GIL. `SubscriptionLoop` instead keeps one rcl wait set of
only its subscriptions and one guard condition, re-adds their handles on each wake-up (C calls), takes every
message that is ready and calls the callbacks on its own thread: no pool hand-over, no guard-condition
round trips. The MultiThreadedExecutor skips the subscriptions the loop owns (`can_execute`), so it wakes only
for services, timers (sim time's /clock subscription among its entities: rclpy's own) and the like.

Behaviour kept: a service handler may still block (a pool thread of the MultiThreadedExecutor runs it), and a
subscription callback may still call services. Changed: subscription callbacks no longer share the node's default
(mutually exclusive) callback group with service handlers, so a slow service no longer holds joint states back;
the runtimes already take both concurrently on the DDS transport. Callbacks of the loop's subscriptions run one
at a time, on the loop's thread, in arrival order per subscription.

Destroying: `remove()` a subscription before destroying it; the loop holds each handle (rclpy's Destroyable use
count) while it waits, so a destroy requested meanwhile happens once the loop lets go, never under rcl_wait.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from vla_policy_node.transport.threads import join_started

log = logging.getLogger(__name__)


class SubscriptionLoop:
    """Waits on a set of rclpy subscriptions (and nothing else) on a thread of its own and runs their callbacks
    there (see the module docstring). Only plain callbacks (no coroutines)."""

    DRAIN = 32  # messages taken from one subscription per wake-up at most (then the others get their turn)

    def __init__(self, context: Any = None, name: str = "rclpy-subscriptions") -> None:
        from rclpy.guard_condition import GuardCondition
        from rclpy.utilities import get_default_context

        self.name = name
        self._context = get_default_context() if context is None else context
        self._guard = GuardCondition(None, None, context=self._context)
        self._lock = threading.Lock()
        self._subscriptions: tuple[Any, ...] = ()
        self._owned: set[Any] = set()  # rclpy Subscriptions hash and compare by identity
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.waited_on: tuple[Any, ...] = ()  # the subscriptions of the latest wait set (for tests)
        self.wakeups = 0

    def owns(self, entity: Any) -> bool:
        return entity in self._owned

    def add(self, subscription: Any) -> None:
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
            self._owned.add(subscription)
        self._wake()

    def remove(self, subscription: Any) -> None:
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)
            self._owned.discard(subscription)
        self._wake()

    def _wake(self) -> None:
        from rclpy.exceptions import InvalidHandle

        with contextlib.suppress(InvalidHandle):  # stopped: the guard condition is gone
            self._guard.trigger()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop waiting (a callback in progress finishes first); the loop's guard condition is destroyed."""
        self._stopped = True
        self._wake()
        join_started(self._thread, timeout)
        self._guard.destroy()

    def _run(self) -> None:
        from rclpy.exceptions import InvalidHandle
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        wait_set: Any = None
        size = -1
        try:
            while not self._stopped:
                subscriptions = self._subscriptions
                with contextlib.ExitStack() as held:
                    live = []
                    for subscription in subscriptions:
                        try:
                            held.enter_context(subscription.handle)
                        except InvalidHandle:  # destroyed without remove(): drop it
                            continue
                        live.append(subscription)
                    try:
                        held.enter_context(self._guard.handle)
                        held.enter_context(self._context.handle)
                    except InvalidHandle:  # context shut down under us
                        return
                    if len(live) != size:
                        wait_set = _rclpy.WaitSet(len(live), 1, 0, 0, 0, 0, self._context.handle)
                        size = len(live)
                    wait_set.clear_entities()
                    for subscription in live:
                        wait_set.add_subscription(subscription.handle)
                    wait_set.add_guard_condition(self._guard.handle)
                    self.waited_on = tuple(live)
                    wait_set.wait(-1)  # releases the GIL
                    if self._stopped or not self._context.ok():
                        return
                    self.wakeups += 1
                    ready = wait_set.get_ready_entities("subscription")
                    if not ready:
                        continue
                    for subscription in live:
                        if subscription.handle.pointer in ready and subscription in self._owned:
                            self._drain(subscription)
        finally:
            self.waited_on = ()

    def _drain(self, subscription: Any) -> None:
        """Take and deliver the subscription's waiting messages (its handle is held by the caller)."""
        from rclpy.subscription import Subscription

        handle, msg_type, raw = subscription.handle, subscription.msg_type, subscription.raw
        with_info = subscription._callback_type is Subscription.CallbackType.WithMessageInfo
        for _ in range(self.DRAIN):
            taken = handle.take_message(msg_type, raw)
            if taken is None:
                return
            try:
                if with_info:
                    subscription.callback(*taken)
                else:
                    subscription.callback(taken[0])
            except Exception:  # a callback's error must not end the loop (the transport's own callbacks catch)
                log.exception("%s: callback for %s raised", self.name, subscription.topic_name)


def split_executor_class() -> type:
    """`SplitExecutor`, built lazily (rclpy import): a MultiThreadedExecutor that leaves the subscriptions handed
    to its `subscriptions` loop to that loop, started and stopped with its spin."""
    from rclpy.executors import MultiThreadedExecutor

    class SplitExecutor(MultiThreadedExecutor):
        def __init__(self, num_threads: int | None = None, *, context: Any = None, name: str = "rclpy") -> None:
            super().__init__(num_threads, context=context)
            self.subscriptions = SubscriptionLoop(context=self._context, name=f"{name}-subscriptions")

        def can_execute(self, entity: Any) -> bool:
            return not self.subscriptions.owns(entity) and super().can_execute(entity)

        def spin(self) -> None:
            self.subscriptions.start()
            super().spin()

        def shutdown(self, timeout_sec: float | None = None) -> bool:
            self.subscriptions.stop(timeout=5.0 if timeout_sec is None or timeout_sec < 0 else timeout_sec)
            return bool(super().shutdown(timeout_sec))

    return SplitExecutor
