"""A node's Python log records on /rosout (rcl_interfaces/msg/Log), as every ROS 2 node's log reaches it.

Over DDS, `RosoutHandler` publishes each record itself, with rcl's /rosout QoS (rcl_qos_profile_rosout_default:
reliable, transient local, depth 1000, a 10 s lifespan: a late joiner gets the last 10 s). Under rclpy,
`RcutilsForwarder` hands records to rcutils under the node's logger name, so they reach the console in ROS's
format *and* rcl's /rosout publisher (Python's own console handlers step aside while it is installed, so nothing
prints twice).
Either way the Log carries the node's name, the record's level (Python's levels are rcutils' numbers), file,
function and line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from vla_policy_node.msgs.stamps import make_time
from vla_policy_node.transport.qos import Durability, QosProfile, Reliability

LOG = "rcl_interfaces/msg/Log"
ROSOUT_TOPIC = "/rosout"
ROSOUT_QOS = QosProfile(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, 1000, lifespan=10.0)
_LEVELS = (10, 20, 30, 40, 50)  # rcl_interfaces/msg/Log DEBUG, INFO, WARN, ERROR, FATAL == Python's numbers


def ros_level(levelno: int) -> int:
    """A Python level -> the nearest Log level at or below it (DEBUG for anything lower)."""
    return max((level for level in _LEVELS if level <= levelno), default=_LEVELS[0])


class RosoutHandler(logging.Handler):
    """Publishes records on /rosout through a transport (see the module docstring)."""

    def __init__(self, transport: Any, logger_name: str, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.transport = transport
        self.logger_name = logger_name
        self._publisher = transport.publisher(ROSOUT_TOPIC, LOG, ROSOUT_QOS)
        self._busy = threading.local()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):  # a record logged while publishing one (a DDS error) is dropped
            return
        self._busy.on = True
        try:
            new = self.transport.new_message
            self._publisher.publish(new(
                LOG, stamp=make_time(new, record.created), level=ros_level(record.levelno), name=self.logger_name,
                msg=self.format(record), file=record.pathname or "", function=record.funcName or "",
                line=max(int(record.lineno or 0), 0)))
        except Exception:  # logging must never raise into the caller (a closed transport at shutdown)
            pass
        finally:
            self._busy.on = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._publisher.close()
        super().close()


class RcutilsForwarder(logging.Handler):
    """Hands records to rcutils under `logger_name` (rclpy imported lazily; see the module docstring)."""

    def __init__(self, logger_name: str, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        from rclpy.impl.implementation_singleton import rclpy_implementation

        self._rclpy = rclpy_implementation
        self.logger_name = logger_name
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from rclpy.logging import LoggingSeverity

            severity = LoggingSeverity(ros_level(record.levelno))
            if not self._rclpy.rclpy_logging_logger_is_enabled_for(self.logger_name, severity):
                return
            self._rclpy.rclpy_logging_rcutils_log(severity, self.logger_name, self.format(record),
                                                  record.funcName or "", record.pathname or "",
                                                  max(int(record.lineno or 0), 0))
        except Exception:
            self.handleError(record)


class InstalledHandler:
    """`handler` on the root logger until `remove()`; `exclusive` also takes Python's console handlers off it
    meanwhile (they come back on remove)."""

    def __init__(self, handler: logging.Handler, exclusive: bool = False) -> None:
        self.handler = handler
        root = logging.getLogger()
        self._removed = [h for h in root.handlers if isinstance(h, logging.StreamHandler)] if exclusive else []
        for h in self._removed:
            root.removeHandler(h)
        root.addHandler(handler)

    def remove(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for h in self._removed:
            if h not in root.handlers:
                root.addHandler(h)
        self._removed = []
        self.handler.close()
