"""cyclonedds IDL types generated from the typestore, wire-identical to what rmw_cyclonedds sends.

Every ROS type `pkg/msg/T` becomes an `IdlStruct` named `pkg::msg::dds_::T_` with the same members in the same
order, so its XCDR1 bytes equal `typestore.serialize_cdr` (checked by tests). Nothing is written by hand: the
member list comes from the rosbags field definitions, which come from the .msg files.

Raw-bytes fast path: cyclonedds' Python serializer handles `sequence<uint8>` element by element (~70 ms for a
640x480 RGB image). After a type is built we swap the (de)serialization machine of every primitive array or
sequence member for one that moves the whole payload as one buffer (numpy), byte-identical on the wire.
The declared IDL type stays `sequence<uint8>`, so type information and matching are unchanged. Primitive
arrays therefore come back as (read-only) numpy arrays, like rosbags messages.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl
from cyclonedds.idl._machinery import PlainCdrV2ArrayOfPrimitiveMachine, PlainCdrV2SequenceOfPrimitiveMachine
from cyclonedds.idl._support import Endianness
from rosbags.typesys.store import Typestore

from vla_policy_node.msgs.typestore import (
    FieldSpec,
    as_numeric_array,
    field_specs,
    fields_of,
    normalize_msgtype,
    normalize_service_type,
    scalar_default,
    service_message_types,
)

# ROS primitive -> cyclonedds IDL annotation (rosidl maps `char` to uint8 and `byte` to octet).
_IDL_PRIMITIVES: dict[str, Any] = {
    "bool": bool,
    "byte": idl.byte,
    "char": idl.uint8,
    "uint8": idl.uint8,
    "int8": idl.int8,
    "uint16": idl.uint16,
    "int16": idl.int16,
    "uint32": idl.uint32,
    "int32": idl.int32,
    "uint64": idl.uint64,
    "int64": idl.int64,
    "float32": idl.float32,
    "float64": idl.float64,
}

# Members prepended to service requests/replies by rmw_cyclonedds (cdds_request_header_t: guid, seq).
REQUEST_HEADER_FIELDS = ("rmw_client_guid_", "rmw_sequence_number_")

_NATIVE = Endianness.native()


def dds_type_name(rostype: str) -> str:
    """'sensor_msgs/msg/Image' -> 'sensor_msgs::msg::dds_::Image_' (what rmw_cyclonedds announces)."""
    pkg, kind, name = rostype.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


class _NumpySequenceMachine(PlainCdrV2SequenceOfPrimitiveMachine):
    """`sequence<primitive>` moved as one buffer; same bytes as the per-element machine it replaces."""

    def __init__(self, idl_type: Any, dtype: np.dtype, max_length: int | None = None) -> None:
        super().__init__(idl_type, max_length=max_length)
        self.dtype = np.dtype(dtype)

    def serialize(self, buffer, value, serialize_kind=None, key_enabled=None) -> None:
        array = as_numeric_array(value, self.dtype)
        if self.max_length is not None and array.size > self.max_length:
            raise ValueError(f"sequence of {array.size} elements exceeds its bound {self.max_length}")
        buffer.align(4)
        buffer.write("I", 4, array.size)
        if array.size:
            buffer.align(self.alignment)
            _write_array(buffer, array)

    def deserialize(self, buffer, deserialize_kind=None, key_enabled=None) -> np.ndarray:
        buffer.align(4)
        count = buffer.read("I", 4)
        if not count:
            return np.zeros(0, dtype=self.dtype)
        buffer.align(self.alignment)
        return _read_array(buffer, self.dtype, count)


class _NumpyArrayMachine(PlainCdrV2ArrayOfPrimitiveMachine):
    """Fixed-size `primitive[N]` moved as one buffer."""

    def __init__(self, idl_type: Any, dtype: np.dtype, length: int) -> None:
        super().__init__(idl_type, length)
        self.dtype = np.dtype(dtype)

    def serialize(self, buffer, value, serialize_kind=None, key_enabled=None) -> None:
        array = as_numeric_array(value, self.dtype)
        if array.size != self.length:
            raise ValueError(f"array member needs exactly {self.length} elements, got {array.size}")
        buffer.align(self.alignment)
        _write_array(buffer, array)

    def deserialize(self, buffer, deserialize_kind=None, key_enabled=None) -> np.ndarray:
        buffer.align(self.alignment)
        return _read_array(buffer, self.dtype, self.length)


def _write_array(buffer: Any, array: np.ndarray) -> None:
    if buffer.endianness != _NATIVE and array.dtype.itemsize > 1:
        array = array.byteswap()
    buffer.write_bytes(np.ascontiguousarray(array).data.cast("B"))


def _read_array(buffer: Any, dtype: np.dtype, count: int) -> np.ndarray:
    raw = _view_bytes(buffer, count * dtype.itemsize)
    order: Literal["<", ">"] = "<" if buffer.endianness == Endianness.Little else ">"
    array = np.frombuffer(raw, dtype=dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype)
    return array if array.dtype.isnative else array.astype(dtype)


def _view_bytes(buffer: Any, size: int) -> memoryview | bytes:
    """The next `size` bytes of a cyclonedds read Buffer as a read-only view, not a copy. `Buffer.read_bytes`
    copies twice (a bytearray slice, then bytes): for a 640x480 frame that is 2 of the 4 copies a take makes,
    each ~1 MB in one C call that holds the GIL (the control thread waits for it). The buffer is this one
    sample's own (cyclonedds builds a Buffer per deserialization and drops it), so a view is safe; read-only,
    so the image decoder hands it on without another copy, as it did the bytes."""
    data, start = getattr(buffer, "_bytes", None), getattr(buffer, "_pos", None)
    if not isinstance(data, bytearray | bytes) or not isinstance(start, int):
        return buffer.read_bytes(size)  # another Buffer implementation: its public path
    view = memoryview(data).toreadonly()[start:start + size]
    buffer._pos = start + len(view)
    return view


class DdsTypeRegistry:
    """Builds (once) and caches the IDL struct of each ROS type, and makes instances with ROS defaults."""

    def __init__(self, typestore: Typestore, *, raw_bytes_fast_path: bool = True) -> None:
        """raw_bytes_fast_path=False keeps cyclonedds' per-element machines (only for comparisons)."""
        self.typestore = typestore
        self.raw_bytes_fast_path = raw_bytes_fast_path
        self._types: dict[str, type[IdlStruct]] = {}
        self._wire_types: dict[str, type[IdlStruct]] = {}
        self._lock = threading.RLock()

    # -- types --------------------------------------------------------------------------------------

    def idl_type(self, msgtype: str) -> type[IdlStruct]:
        msgtype = normalize_msgtype(msgtype)
        with self._lock:
            cls = self._types.get(msgtype)
            if cls is None:
                cls = self._build(msgtype, dds_type_name(msgtype), prefix=())
                self._types[msgtype] = cls
            return cls

    def service_wire_types(self, srvtype: str) -> tuple[type[IdlStruct], type[IdlStruct]]:
        """Request/reply structs with rmw_cyclonedds' request header (client guid, sequence) in front."""
        srvtype = normalize_service_type(srvtype)
        out = []
        with self._lock:
            for msgtype in service_message_types(srvtype):
                cls = self._wire_types.get(msgtype)
                if cls is None:
                    header = ((REQUEST_HEADER_FIELDS[0], idl.uint64), (REQUEST_HEADER_FIELDS[1], idl.int64))
                    cls = self._build(msgtype, dds_type_name(msgtype), prefix=header, suffix="__wire")
                    self._wire_types[msgtype] = cls
                out.append(cls)
        return out[0], out[1]

    def _build(
        self, msgtype: str, typename: str, prefix: tuple[tuple[str, Any], ...], suffix: str = ""
    ) -> type[IdlStruct]:
        specs = field_specs(self.typestore, msgtype)
        members: dict[str, Any] = dict(prefix)
        for spec in specs:
            members[spec.name] = self._member_type(spec)
        cls = make_idl_struct(msgtype.replace("/", "__") + suffix, typename, members)
        cls.__module__ = __name__
        cls.__ros_msgtype__ = msgtype  # type: ignore[attr-defined]
        if self.raw_bytes_fast_path:
            _install_fast_paths(cls, specs)
        return cls

    def _member_type(self, spec: FieldSpec) -> Any:
        # The `type: ignore[misc]`s: cyclonedds' bounded_str, array and sequence are subscripted through a plain
        # __class_getitem__ (not typing.Generic), which type checkers do not accept.
        if spec.nested:
            element: Any = self.idl_type(spec.nested)
        elif spec.primitive == "string":
            element = idl.bounded_str[spec.string_bound] if spec.string_bound else str  # type: ignore[misc]
        elif spec.primitive in _IDL_PRIMITIVES:
            element = _IDL_PRIMITIVES[spec.primitive]
        else:
            raise TypeError(f"field {spec.name!r}: ROS type {spec.primitive!r} is not supported over DDS")
        if spec.container == "array":
            return idl.array[element, spec.length]  # type: ignore[misc]
        if spec.container == "sequence":
            if spec.length:
                return idl.sequence[element, spec.length]  # type: ignore[misc]
            return idl.sequence[element]  # type: ignore[misc]
        return element

    # -- instances ------------------------------------------------------------------------------------

    def new(self, msgtype: str, /, **fields: Any) -> Any:
        """Instance of `msgtype` with ROS defaults for missing fields (nested objects are converted)."""
        msgtype = normalize_msgtype(msgtype)
        cls = self.idl_type(msgtype)
        specs = field_specs(self.typestore, msgtype)
        unknown = set(fields) - {spec.name for spec in specs}
        if unknown:
            raise TypeError(f"{msgtype} has no field(s) {sorted(unknown)}")
        values = {
            spec.name: self._value(spec, fields[spec.name]) if spec.name in fields else self._default(spec)
            for spec in specs
        }
        return cls(**values)

    def coerce(self, msgtype: str, obj: Any) -> Any:
        """Return `obj` as this registry's struct: rosbags dataclasses, rclpy messages and dicts are copied."""
        msgtype = normalize_msgtype(msgtype)
        cls = self.idl_type(msgtype)
        if isinstance(obj, cls):
            return obj
        fields = fields_of(obj, field_specs(self.typestore, msgtype))
        return self.new(msgtype, **fields)

    def to_wire(self, wire_cls: type[IdlStruct], plain: Any, client_guid: int, sequence: int) -> Any:
        msgtype = wire_cls.__ros_msgtype__  # type: ignore[attr-defined]
        plain = self.coerce(msgtype, plain)
        values = {spec.name: getattr(plain, spec.name) for spec in field_specs(self.typestore, msgtype)}
        values[REQUEST_HEADER_FIELDS[0]] = client_guid
        values[REQUEST_HEADER_FIELDS[1]] = sequence
        return wire_cls(**values)

    def from_wire(self, wire: Any) -> tuple[Any, int, int]:
        """(plain message, client guid, sequence number) of a request/reply struct."""
        msgtype = type(wire).__ros_msgtype__
        plain_cls = self.idl_type(msgtype)
        values = {spec.name: getattr(wire, spec.name) for spec in field_specs(self.typestore, msgtype)}
        return plain_cls(**values), getattr(wire, REQUEST_HEADER_FIELDS[0]), getattr(wire, REQUEST_HEADER_FIELDS[1])

    def _default(self, spec: FieldSpec) -> Any:
        if spec.container == "single":
            return self.new(spec.nested) if spec.nested else scalar_default(spec.primitive or "")
        if spec.container == "array":
            if spec.is_numeric:
                return np.zeros(spec.length, dtype=spec.dtype)
            if spec.nested:
                return [self.new(spec.nested) for _ in range(spec.length)]
            return [scalar_default(spec.primitive or "")] * spec.length
        return np.zeros(0, dtype=spec.dtype) if spec.is_numeric else []

    def _value(self, spec: FieldSpec, value: Any) -> Any:
        if spec.nested:
            if spec.container == "single":
                return self.coerce(spec.nested, value)
            return [self.coerce(spec.nested, item) for item in value]
        if spec.container == "single":
            if spec.primitive in ("byte", "char") and isinstance(value, bytes | bytearray):
                return value[0]
            return value
        if spec.is_numeric:
            return value  # the numpy machines accept arrays, bytes-likes and sequences
        return list(value)


def _install_fast_paths(cls: type[IdlStruct], specs: tuple[FieldSpec, ...]) -> None:
    """Replace per-element machines of primitive arrays/sequences with the numpy ones (see module doc)."""
    cls.__idl__.populate()
    for machine in (cls.__idl__.v1_machine, cls.__idl__.v2_machine):
        members = getattr(machine, "members_machines", None)
        if members is None:  # only final (non-mutable) structs are generated; be safe anyway
            continue
        for spec in specs:
            if not spec.is_numeric or spec.container == "single":
                continue
            idl_type = _IDL_PRIMITIVES[spec.primitive or ""]
            if spec.container == "sequence":
                members[spec.name] = _NumpySequenceMachine(idl_type, spec.dtype, spec.length or None)
            else:
                members[spec.name] = _NumpyArrayMachine(idl_type, spec.dtype, spec.length)
