"""One type registry for every transport: the rosbags ROS 2 Jazzy store plus our vla_msgs, generated at run time.

The store is built from the `.msg`/`.srv` files (see `definitions`), so bag files, DDS types and type hashes
all derive from the same text. Services get four entries, named as rosidl names them, so that
`typestore.hash_rihs01("vla_msgs/srv/SetPaused")` is the service type hash ROS computes:
`<srv>_Request`, `<srv>_Response`, `<srv>_Event` (service_msgs/ServiceEventInfo info, request[<=1],
response[<=1]) and `<srv>` itself (request_message, response_message, event_message).

`FieldSpec` is the normalized view of a field that the DDS type generator and the message factories use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from vla_policy_node.msgs.definitions import (
    UPSTREAM_MESSAGES,
    UPSTREAM_SERVICES,
    InterfaceDefinitions,
    load_interface_definitions,
    split_service_text,
)

Container = Literal["single", "array", "sequence"]

# ROS primitive -> numpy dtype (rosbags uses these for arrays/sequences; `char` and `byte` are octets).
NUMPY_DTYPES: dict[str, np.dtype] = {
    "bool": np.dtype(np.bool_),
    "byte": np.dtype(np.uint8),
    "char": np.dtype(np.uint8),
    "uint8": np.dtype(np.uint8),
    "int8": np.dtype(np.int8),
    "uint16": np.dtype(np.uint16),
    "int16": np.dtype(np.int16),
    "uint32": np.dtype(np.uint32),
    "int32": np.dtype(np.int32),
    "uint64": np.dtype(np.uint64),
    "int64": np.dtype(np.int64),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
_SCALAR_DEFAULTS: dict[str, Any] = {"bool": False, "string": "", "float32": 0.0, "float64": 0.0}


@dataclass(frozen=True)
class FieldSpec:
    """One field of a message type.

    container: "single", "array" (fixed `length`) or "sequence" (`length` is the bound, 0 = unbounded).
    primitive: ROS primitive name ("float64", "string", ...) or None for a nested message `nested`.
    """

    name: str
    container: Container
    primitive: str | None
    nested: str | None
    length: int = 0
    string_bound: int = 0

    @property
    def is_numeric(self) -> bool:
        return self.primitive in NUMPY_DTYPES

    @property
    def plain(self) -> bool:
        """A single scalar or string: its value is stored as given (bytes for byte/char are unpacked)."""
        return self.container == "single" and not self.nested

    @property
    def dtype(self) -> np.dtype:
        return NUMPY_DTYPES[self.primitive or ""]


@lru_cache(maxsize=4096)
def normalize_msgtype(msgtype: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' -> 'sensor_msgs/msg/Image' (cached: it runs per message)."""
    parts = msgtype.strip("/").split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3:
        return "/".join(parts)
    raise ValueError(f"not a ROS message type name: {msgtype!r}")


def service_message_types(srvtype: str) -> tuple[str, str]:
    """'vla_msgs/srv/SetPaused' -> ('vla_msgs/srv/SetPaused_Request', 'vla_msgs/srv/SetPaused_Response')."""
    pkg, kind, name = normalize_service_type(srvtype).split("/")
    return f"{pkg}/{kind}/{name}_Request", f"{pkg}/{kind}/{name}_Response"


def normalize_service_type(srvtype: str) -> str:
    parts = srvtype.strip("/").split("/")
    if len(parts) == 2:
        return f"{parts[0]}/srv/{parts[1]}"
    if len(parts) == 3 and parts[1] == "srv":
        return "/".join(parts)
    raise ValueError(f"not a ROS service type name: {srvtype!r}")


def _fields_from_text(text: str, msgtype: str) -> list[tuple[str, Any]]:
    """Parse one message text with rosbags; returns its field list (nested names already normalized)."""
    pkg, _, name = msgtype.split("/")
    parsed = get_types_from_msg(text, f"{pkg}/msg/{name}")
    fields = list(parsed[f"{pkg}/msg/{name}"][1])
    return fields or [("structure_needs_at_least_one_member", (Nodetype.BASE, ("uint8", 0)))]


def _consts_from_text(text: str, msgtype: str) -> list[Any]:
    pkg, _, name = msgtype.split("/")
    return list(get_types_from_msg(text, f"{pkg}/msg/{name}")[f"{pkg}/msg/{name}"][0])


def _service_typedefs(srvtype: str, text: str) -> dict[str, tuple[list[Any], list[tuple[str, Any]]]]:
    """The four rosidl types of one service, as rosbags fielddefs."""
    request_text, response_text = split_service_text(text, srvtype)
    request, response = service_message_types(srvtype)
    event = f"{srvtype}_Event"
    return {
        request: (_consts_from_text(request_text, request), _fields_from_text(request_text, request)),
        response: (_consts_from_text(response_text, response), _fields_from_text(response_text, response)),
        event: (
            [],
            [
                ("info", (Nodetype.NAME, "service_msgs/msg/ServiceEventInfo")),
                ("request", (Nodetype.SEQUENCE, ((Nodetype.NAME, request), 1))),
                ("response", (Nodetype.SEQUENCE, ((Nodetype.NAME, response), 1))),
            ],
        ),
        srvtype: (
            [],
            [
                ("request_message", (Nodetype.NAME, request)),
                ("response_message", (Nodetype.NAME, response)),
                ("event_message", (Nodetype.NAME, event)),
            ],
        ),
    }


def register_interfaces(store: Typestore, definitions: InterfaceDefinitions) -> None:
    """Add one package's messages and services to `store`."""
    typedefs: dict[str, Any] = {}
    for msgtype, text in definitions.messages.items():
        typedefs.update(get_types_from_msg(text, msgtype))
    store.register(typedefs)
    for srvtype, text in definitions.services.items():
        # Request/Response first: the Event and service entries refer to them.
        srv = _service_typedefs(srvtype, text)
        names = list(srv)
        store.register({name: srv[name] for name in names[:2]})
        store.register({name: srv[name] for name in names[2:]})


def build_typestore(interface_dirs: Iterable[Path] = (), *, include_vla_msgs: bool = True) -> Typestore:
    """Jazzy store + upstream extras + vla_msgs (+ any other interface package directories)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    _char_as_uint8(store)
    extras: dict[str, Any] = {}
    for msgtype, text in UPSTREAM_MESSAGES.items():
        if msgtype not in store.fielddefs:
            extras.update(get_types_from_msg(text, msgtype))
    if extras:
        store.register(extras)
    upstream = {srvtype: text for srvtype, text in UPSTREAM_SERVICES.items() if srvtype not in store.fielddefs}
    if upstream:
        register_interfaces(store, InterfaceDefinitions(package="rcl_interfaces", services=upstream))
    if include_vla_msgs:
        register_interfaces(store, load_interface_definitions())
    for directory in interface_dirs:
        register_interfaces(store, load_interface_definitions(Path(directory), package=Path(directory).name))
    return store


def _char_field(desc: Any) -> Any:
    kind, rest = desc
    if kind == Nodetype.BASE:
        return (kind, ("uint8", rest[1])) if rest[0] == "char" else desc
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return (kind, (_char_field(rest[0]), rest[1]))
    return desc


def _char_as_uint8(store: Typestore) -> None:
    """ROS 2's `char` is uint8 (rosidl maps it so in the IDL, hence in the RIHS01 type description), while the
    rosbags store keeps `char`: its hashes of rmw_dds_common/Gid, std_msgs/Char and service_msgs/ServiceEventInfo
    (so of every service's event type, and of every service) differed from ROS's. Same bytes on the wire."""
    for name, (consts, fields) in list(store.fielddefs.items()):
        new_fields = [(field_name, _char_field(desc)) for field_name, desc in fields]
        if new_fields != list(fields):
            store.fielddefs[name] = (consts, new_fields)


_default_lock = threading.Lock()
_default_store: Typestore | None = None


def default_typestore() -> Typestore:
    """The process-wide store (built once, on first use)."""
    global _default_store
    with _default_lock:
        if _default_store is None:
            _default_store = build_typestore()
        return _default_store


def field_specs(store: Typestore, msgtype: str) -> tuple[FieldSpec, ...]:
    """Normalized fields of `msgtype` (cached per store)."""
    return _field_specs_cached(id(store), store, msgtype)


@lru_cache(maxsize=1024)
def _field_specs_cached(_store_id: int, store: Typestore, msgtype: str) -> tuple[FieldSpec, ...]:
    try:
        _, fields = store.fielddefs[msgtype]
    except KeyError:
        raise KeyError(f"unknown message type {msgtype!r} (not in the typestore)") from None
    return tuple(_to_spec(name, desc) for name, desc in fields)


def _to_spec(name: str, desc: Any) -> FieldSpec:
    node, rest = desc
    container: Container = "single"
    length = 0
    if node in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        container = "array" if node == Nodetype.ARRAY else "sequence"
        (node, rest), length = rest
    if node == Nodetype.NAME:
        return FieldSpec(name, container, None, rest, length)
    primitive, bound = rest
    return FieldSpec(name, container, primitive, None, length, int(bound or 0) if primitive == "string" else 0)


def scalar_default(primitive: str) -> Any:
    return _SCALAR_DEFAULTS.get(primitive, 0)


def type_hash(store: Typestore, msgtype: str) -> str:
    """RIHS01 hash string as ROS 2 computes it (messages and, via the entries above, services)."""
    return store.hash_rihs01(msgtype)


# ---------------------------------------------------------------------------------------------------------
# rosbags messages: construction with defaults and conversion from any object with ROS field names


def new_rosbags_message(store: Typestore, msgtype: str, /, **fields: Any) -> Any:
    """Build a rosbags dataclass; missing fields get ROS defaults, numeric arrays become numpy arrays."""
    cls, specs, known = _message_plan(id(store), store, msgtype)
    if not known.issuperset(fields):
        unknown = set(fields) - known
        raise TypeError(f"{normalize_msgtype(msgtype)} has no field(s) {sorted(unknown)}; fields are {sorted(known)}")
    values = {}
    for spec in specs:
        name = spec.name
        if name in fields:
            value = fields[name]
            values[name] = value if spec.plain and not isinstance(value, bytes | bytearray) else \
                _rosbags_value(store, spec, value)
        else:
            values[name] = _rosbags_default(store, spec)
    return cls(**values)


@lru_cache(maxsize=4096)
def _message_plan(_store_id: int, store: Typestore, msgtype: str) -> tuple[type, tuple[FieldSpec, ...], frozenset]:
    """(class, fields, field names) of `msgtype` in `store`: looked up once, not per message."""
    normalized = normalize_msgtype(msgtype)
    specs = field_specs(store, normalized)
    return store.types[normalized], specs, frozenset(spec.name for spec in specs)


def _rosbags_default(store: Typestore, spec: FieldSpec) -> Any:
    if spec.container == "single":
        if spec.nested:
            return new_rosbags_message(store, spec.nested)
        return scalar_default(spec.primitive or "")
    if spec.container == "array":
        if spec.is_numeric:
            return np.zeros(spec.length, dtype=spec.dtype)
        if spec.nested:
            return [new_rosbags_message(store, spec.nested) for _ in range(spec.length)]
        return [scalar_default(spec.primitive or "")] * spec.length
    if spec.is_numeric:
        return np.zeros(0, dtype=spec.dtype)
    return []


def as_numeric_array(value: Any, dtype: np.dtype) -> np.ndarray:
    """Bytes-like or sequence -> 1-D numpy array of `dtype` without a per-element path for octets."""
    if isinstance(value, np.ndarray):
        return value.reshape(-1).astype(dtype, copy=False)
    if dtype.itemsize == 1 and isinstance(value, bytes | bytearray | memoryview):
        return np.frombuffer(value, dtype=np.uint8).view(dtype)
    if hasattr(value, "typecode") and hasattr(value, "tobytes"):  # array.array from rclpy
        return np.frombuffer(value, dtype=np.dtype(value.typecode)).astype(dtype, copy=False)
    return np.asarray(list(value) if not isinstance(value, list | tuple) else value, dtype=dtype).reshape(-1)


def _rosbags_value(store: Typestore, spec: FieldSpec, value: Any) -> Any:
    if spec.container == "single":
        if spec.nested:
            return to_rosbags(store, spec.nested, value)
        if spec.primitive in ("byte", "char") and isinstance(value, bytes | bytearray):
            return value[0]
        return value
    if spec.is_numeric:
        return as_numeric_array(value, spec.dtype)
    if spec.nested:
        return [to_rosbags(store, spec.nested, item) for item in value]
    return list(value)


def fields_of(obj: Any, specs: Iterable[FieldSpec]) -> dict[str, Any]:
    """The ROS fields present on `obj` (attributes, or keys of a mapping)."""
    if isinstance(obj, Mapping):
        return {spec.name: obj[spec.name] for spec in specs if spec.name in obj}
    return {spec.name: getattr(obj, spec.name) for spec in specs if hasattr(obj, spec.name)}


def to_rosbags(store: Typestore, msgtype: str, obj: Any) -> Any:
    """Copy any object with ROS field names (rclpy message, DDS struct, dict) into a rosbags dataclass."""
    msgtype = normalize_msgtype(msgtype)
    if getattr(obj, "__msgtype__", None) == msgtype:
        return obj
    fields = fields_of(obj, field_specs(store, msgtype))
    return new_rosbags_message(store, msgtype, **fields)
