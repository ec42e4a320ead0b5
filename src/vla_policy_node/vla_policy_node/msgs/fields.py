"""Reading fields off any message object (rclpy message, rosbags dataclass, DDS struct) without trusting it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError

MessageFactory = Callable[..., Any]
"""`factory(msgtype, **fields) -> message`: `Transport.new_message`, or `rosbags_factory()` offline."""


def rosbags_factory(typestore: Any = None) -> MessageFactory:
    """A factory that builds rosbags dataclasses (bags, tests, tools without a live transport)."""
    from vla_policy_node.msgs.typestore import default_typestore, new_rosbags_message

    store = typestore or default_typestore()

    def new(msgtype: str, /, **fields: Any) -> Any:
        return new_rosbags_message(store, msgtype, **fields)

    return new


def get_field(msg: Any, name: str, msgtype: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise MessageError("missing_field", f"message has no field {name!r}", msgtype) from None


def octets(data: Any) -> np.ndarray:
    """uint8 view of a `uint8[]` field without a per-element copy when the container allows it."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.astype(np.uint8).reshape(-1)
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    if hasattr(data, "typecode") and hasattr(data, "tobytes"):  # array.array (rclpy)
        return np.frombuffer(data, dtype=np.uint8) if data.itemsize == 1 else np.asarray(data, dtype=np.uint8)
    return np.asarray(list(data), dtype=np.uint8)


def float_array(values: Any, what: str, msgtype: str, *, finite: bool = True) -> np.ndarray:
    """1-D float64 copy of a numeric sequence; non-finite values are a MessageError when `finite`."""
    try:
        array = np.array(values if not isinstance(values, bytes | bytearray) else list(values), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MessageError("bad_value", f"{what} is not numeric: {error}", msgtype) from None
    array = array.reshape(-1)
    if finite and not np.isfinite(array).all():  # the method: no array-function dispatch (per message)
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise MessageError("non_finite", f"{what} has {bad} NaN/inf value(s)", msgtype)
    return array


def string_list(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def byte_value(value: Any) -> int:
    """A `byte` field as int: rclpy gives bytes of length 1, rosbags and DDS give int."""
    if isinstance(value, bytes | bytearray):
        return value[0] if value else 0
    return int(value)


def check_unique(names: tuple[str, ...], what: str, msgtype: str) -> None:
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise MessageError("duplicate_names", f"{what} repeats {dupes}", msgtype)
