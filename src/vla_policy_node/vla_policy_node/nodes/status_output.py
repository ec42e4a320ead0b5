"""A node's status outputs: its PolicyStatus topic at the status rate, /diagnostics every `period` seconds."""

from __future__ import annotations

import math
from collections.abc import Callable

from vla_policy_node.control.status import ControlStatus, Diagnostic
from vla_policy_node.nodes.node_support import (
    DIAGNOSTIC_ARRAY,
    POLICY_STATUS,
    diagnostics_message,
    policy_status_message,
)
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS


class StatusOutput:
    def __init__(self, transport: Transport, topic: str, node_name: str, hardware_id: str,
                 diagnostics_period: float) -> None:
        self.transport = transport
        self.node_name = node_name
        self.hardware_id = hardware_id
        self.period = diagnostics_period
        self._status_pub = transport.publisher(topic, POLICY_STATUS, DEFAULT_QOS)
        self._diagnostics_pub = transport.publisher("/diagnostics", DIAGNOSTIC_ARRAY, DEFAULT_QOS)
        self._last_diagnostics = -math.inf

    def publish(self, now: float, status: ControlStatus, diagnostics: Callable[[float], list[Diagnostic]]) -> None:
        """The status now; diagnostics when `period` has passed (or the clock went back)."""
        new = self.transport.new_message
        self._status_pub.publish(policy_status_message(new, status, now))
        if now - self._last_diagnostics >= self.period or now < self._last_diagnostics:
            self._last_diagnostics = now
            self._diagnostics_pub.publish(diagnostics_message(new, self.node_name, self.hardware_id,
                                                              diagnostics(now), now))
