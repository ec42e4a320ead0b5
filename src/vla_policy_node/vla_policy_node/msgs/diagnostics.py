"""diagnostic_msgs/DiagnosticArray from (level, name, message, key-values) entries, for /diagnostics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, byte_value, get_field
from vla_policy_node.msgs.stamps import header_stamp, make_header

DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


class DiagnosticEntry(NamedTuple):
    level: int
    name: str
    message: str
    values: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()
    hardware_id: str = ""


def encode_diagnostics(
    new: MessageFactory,
    entries: Iterable[DiagnosticEntry | tuple[Any, ...]],
    *,
    stamp: float,
    hardware_id: str = "",
) -> Any:
    statuses = []
    for raw in entries:
        entry = raw if isinstance(raw, DiagnosticEntry) else DiagnosticEntry(*raw)
        if entry.level not in LEVEL_NAMES:
            raise ValueError(f"diagnostic level must be one of {LEVEL_NAMES}, got {entry.level}")
        pairs = entry.values.items() if isinstance(entry.values, Mapping) else entry.values
        statuses.append(
            new(
                "diagnostic_msgs/msg/DiagnosticStatus",
                level=int(entry.level),
                name=entry.name,
                message=entry.message,
                hardware_id=entry.hardware_id or hardware_id,
                values=[new("diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v)) for k, v in pairs],
            )
        )
    return new(DIAGNOSTIC_ARRAY, header=make_header(new, stamp), status=statuses)


def decode_diagnostics(msg: Any) -> tuple[float, list[DiagnosticEntry]]:
    """(stamp, entries) with values as ordered (key, value) string pairs."""
    entries = []
    for status in get_field(msg, "status", DIAGNOSTIC_ARRAY):
        level = byte_value(status.level)
        if level not in LEVEL_NAMES:
            raise MessageError("bad_level", f"diagnostic level {level} for {status.name!r}", DIAGNOSTIC_ARRAY)
        entries.append(
            DiagnosticEntry(
                level=level,
                name=str(status.name),
                message=str(status.message),
                values=tuple((str(kv.key), str(kv.value)) for kv in status.values),
                hardware_id=str(status.hardware_id),
            )
        )
    return header_stamp(msg), entries
