"""The parameter services every ROS 2 node offers, served over the DDS transport from a ParameterTable.

`~/list_parameters`, `~/get_parameters`, `~/get_parameter_types`, `~/describe_parameters`, `~/set_parameters`,
`~/set_parameters_atomically` (rcl_interfaces/srv, answered as rclpy's ParameterService answers them: an
undeclared name in a get/describe gives an empty reply) and `/parameter_events`, so `ros2 param list/get/set/
describe` work against a node without rclpy. The rules (types, ranges, start-up only, stricter limits) are in
`transport.parameters`, shared with the rclpy path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vla_policy_node.msgs.stamps import make_time
from vla_policy_node.transport.base import ServiceServer, Transport
from vla_policy_node.transport.parameters import Param, ParameterTable, ParameterType, SetResult, parameter_type
from vla_policy_node.transport.qos import QosProfile

PARAMETER_EVENT = "rcl_interfaces/msg/ParameterEvent"
PARAMETER_EVENTS_QOS = QosProfile(depth=1000)  # rclpy's qos_profile_parameter_events: reliable, volatile
SERVICES = {
    "describe_parameters": "rcl_interfaces/srv/DescribeParameters",
    "get_parameters": "rcl_interfaces/srv/GetParameters",
    "get_parameter_types": "rcl_interfaces/srv/GetParameterTypes",
    "list_parameters": "rcl_interfaces/srv/ListParameters",
    "set_parameters": "rcl_interfaces/srv/SetParameters",
    "set_parameters_atomically": "rcl_interfaces/srv/SetParametersAtomically",
}
_VALUE_FIELDS = {
    ParameterType.BOOL: "bool_value",
    ParameterType.INTEGER: "integer_value",
    ParameterType.DOUBLE: "double_value",
    ParameterType.STRING: "string_value",
    ParameterType.BYTE_ARRAY: "byte_array_value",
    ParameterType.BOOL_ARRAY: "bool_array_value",
    ParameterType.INTEGER_ARRAY: "integer_array_value",
    ParameterType.DOUBLE_ARRAY: "double_array_value",
    ParameterType.STRING_ARRAY: "string_array_value",
}
_PYTHON = {
    ParameterType.BOOL: bool,
    ParameterType.INTEGER: int,
    ParameterType.DOUBLE: float,
    ParameterType.STRING: str,
}


def value_message(new: Callable[..., Any], value: Any) -> Any:
    """A Python value -> rcl_interfaces/msg/ParameterValue."""
    kind = parameter_type(value)
    if kind == ParameterType.NOT_SET:
        return new("rcl_interfaces/msg/ParameterValue", type=int(kind))
    field = _VALUE_FIELDS[kind]
    if kind == ParameterType.BYTE_ARRAY:
        value = list(bytes(value))
    return new("rcl_interfaces/msg/ParameterValue", type=int(kind), **{field: value})


def value_of(msg: Any) -> tuple[ParameterType, Any]:
    """rcl_interfaces/msg/ParameterValue -> (type, Python value); unknown types read as NOT_SET."""
    try:
        kind = ParameterType(int(msg.type))
    except ValueError:
        return ParameterType.NOT_SET, None
    if kind == ParameterType.NOT_SET:
        return kind, None
    raw = getattr(msg, _VALUE_FIELDS[kind])
    if kind in _PYTHON:
        return kind, _PYTHON[kind](raw)
    if kind == ParameterType.BYTE_ARRAY:
        return kind, bytes(int(b[0]) if isinstance(b, bytes | bytearray) else int(b) for b in raw)
    element = {ParameterType.BOOL_ARRAY: bool, ParameterType.INTEGER_ARRAY: int,
               ParameterType.DOUBLE_ARRAY: float, ParameterType.STRING_ARRAY: str}[kind]
    return kind, [element(v) for v in raw]


def descriptor_message(new: Callable[..., Any], name: str, spec: Param) -> Any:
    """Param -> rcl_interfaces/msg/ParameterDescriptor, as node_support declares it under rclpy."""
    fields: dict[str, Any] = {"name": name, "type": int(spec.type), "description": spec.description_text(),
                              "additional_constraints": spec.constraints_text(), "read_only": spec.read_only}
    if spec.range is not None:
        low, high = spec.range
        if spec.type == ParameterType.INTEGER:
            fields["integer_range"] = [new("rcl_interfaces/msg/IntegerRange", from_value=int(low), to_value=int(high),
                                           step=0)]
        else:
            fields["floating_point_range"] = [new("rcl_interfaces/msg/FloatingPointRange", from_value=float(low),
                                                  to_value=float(high), step=0.0)]
    return new("rcl_interfaces/msg/ParameterDescriptor", **fields)


class DdsParameterServices:
    """Serves `table` under the node's name on `transport` and publishes its changes on /parameter_events."""

    def __init__(self, transport: Transport, table: ParameterTable, node_fqn: str) -> None:
        self.transport = transport
        self.table = table
        self.node_fqn = node_fqn
        self._events = transport.publisher("/parameter_events", PARAMETER_EVENT, PARAMETER_EVENTS_QOS)
        handlers = {
            "describe_parameters": self._describe,
            "get_parameters": self._get,
            "get_parameter_types": self._types,
            "list_parameters": self._list,
            "set_parameters": self._set,
            "set_parameters_atomically": self._set_atomically,
        }
        self._servers: list[ServiceServer] = [
            transport.service(f"~/{name}", SERVICES[name], handlers[name]) for name in SERVICES
        ]
        table.add_on_changed(self._publish_event)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []
        self._events.close()

    def _response(self, name: str, **fields: Any) -> Any:
        return self.transport.new_response(SERVICES[name], **fields)

    def _describe(self, request: Any) -> Any:
        new = self.transport.new_message
        names = list(request.names)
        if not all(self.table.has(name) for name in names):
            return self._response("describe_parameters")  # rclpy: an undeclared name empties the reply
        return self._response("describe_parameters",
                              descriptors=[descriptor_message(new, name, self.table.spec(name)) for name in names])

    def _get(self, request: Any) -> Any:
        new = self.transport.new_message
        names = list(request.names)
        if not all(self.table.has(name) for name in names):
            return self._response("get_parameters")
        return self._response("get_parameters", values=[value_message(new, self.table.get(name)) for name in names])

    def _types(self, request: Any) -> Any:
        names = list(request.names)
        if not all(self.table.has(name) for name in names):
            return self._response("get_parameter_types")
        return self._response("get_parameter_types", types=[int(self.table.type_of(name)) for name in names])

    def _list(self, request: Any) -> Any:
        names, prefixes = self.table.names(list(request.prefixes), int(request.depth))
        result = self.transport.new_message("rcl_interfaces/msg/ListParametersResult", names=names,
                                            prefixes=prefixes)
        return self._response("list_parameters", result=result)

    def _result(self, result: SetResult) -> Any:
        return self.transport.new_message("rcl_interfaces/msg/SetParametersResult", successful=result.successful,
                                          reason=result.reason)

    def _changes(self, request: Any) -> list[tuple[str, ParameterType, Any]]:
        return [(str(p.name), *value_of(p.value)) for p in request.parameters]

    def _set(self, request: Any) -> Any:
        results = [self.table.set_atomically([change]) for change in self._changes(request)]
        return self._response("set_parameters", results=[self._result(r) for r in results])

    def _set_atomically(self, request: Any) -> Any:
        return self._response("set_parameters_atomically",
                              result=self._result(self.table.set_atomically(self._changes(request))))

    def _publish_event(self, changed: list[tuple[str, Any]], declared: list[str]) -> None:
        new = self.transport.new_message
        parameters = [new("rcl_interfaces/msg/Parameter", name=name, value=value_message(new, value))
                      for name, value in changed]
        new_parameters = [p for p, (name, _) in zip(parameters, changed, strict=True) if name in declared]
        changed_parameters = [p for p, (name, _) in zip(parameters, changed, strict=True) if name not in declared]
        self._events.publish(new(PARAMETER_EVENT, stamp=make_time(new, self.transport.now()), node=self.node_fqn,
                                 new_parameters=new_parameters, changed_parameters=changed_parameters))
