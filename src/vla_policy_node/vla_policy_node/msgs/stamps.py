"""Float seconds <-> builtin_interfaces Time/Duration and std_msgs/Header."""

from __future__ import annotations

import math
from typing import Any

from vla_policy_node.msgs.fields import MessageFactory

_NS = 1_000_000_000


def seconds_to_sec_nanosec(seconds: float) -> tuple[int, int]:
    """Split float seconds into (sec, nanosec) with 0 <= nanosec < 1e9 (negative values floor, like ROS)."""
    if not math.isfinite(seconds):
        raise ValueError(f"time must be finite, got {seconds}")
    sec = math.floor(seconds)
    nanosec = round((seconds - sec) * _NS)
    if nanosec >= _NS:
        sec, nanosec = sec + 1, nanosec - _NS
    return int(sec), int(nanosec)


def time_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time or Duration (any object with sec, nanosec) -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


duration_to_seconds = time_to_seconds


def make_time(new: MessageFactory, seconds: float) -> Any:
    sec, nanosec = seconds_to_sec_nanosec(seconds)
    return new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def make_duration(new: MessageFactory, seconds: float) -> Any:
    sec, nanosec = seconds_to_sec_nanosec(seconds)
    return new("builtin_interfaces/msg/Duration", sec=sec, nanosec=nanosec)


def make_header(new: MessageFactory, stamp: float, frame_id: str = "") -> Any:
    return new("std_msgs/msg/Header", stamp=make_time(new, stamp), frame_id=frame_id)


def header_stamp(msg: Any) -> float:
    """Seconds of `msg.header.stamp`."""
    return time_to_seconds(msg.header.stamp)
