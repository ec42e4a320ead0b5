"""Simulated time without rclpy: the latest /clock sample (`ros2 bag play --clock`, a simulator).

Under rclpy, `use_sim_time` makes the node's own clock do this and `Transport.now` follows it. Over plain DDS
a node passes `TopicClock(transport).now` as its clock instead (`--use-sim-time`). Until the first /clock
message the time is 0.0, which the runtimes treat as "not started" (as rclpy's timers do not fire then).
The timers themselves still run on the wall clock: right for replay at rate 1, approximate otherwise.
"""

from __future__ import annotations

from typing import Any

from vla_policy_node.msgs.stamps import time_to_seconds
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import SENSOR_DATA_QOS

CLOCK = "rosgraph_msgs/msg/Clock"


class TopicClock:
    def __init__(self, transport: Transport, topic: str = "/clock") -> None:
        self.time = 0.0
        self.samples = 0
        self._subscription = transport.subscribe(topic, CLOCK, self._on_clock, SENSOR_DATA_QOS)

    def _on_clock(self, msg: Any) -> None:
        self.time = time_to_seconds(msg.clock)
        self.samples += 1

    def now(self) -> float:
        return self.time

    def close(self) -> None:
        self._subscription.close()
