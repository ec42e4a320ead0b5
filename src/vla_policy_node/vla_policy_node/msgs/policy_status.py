"""vla_msgs/PolicyStatus from a plain mapping or dataclass of status fields, and back to a dict.

The field list is the message definition itself (via the typestore), so adding a field to
PolicyStatus.msg needs no change here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, get_field
from vla_policy_node.msgs.stamps import header_stamp, make_header
from vla_policy_node.msgs.typestore import default_typestore, field_specs

POLICY_STATUS = "vla_msgs/msg/PolicyStatus"
_PAIRED = (("stale_inputs", "input_ages"), ("clamp_names", "clamp_counts"), ("rejection_names", "rejection_counts"))


def status_fields() -> tuple[str, ...]:
    """PolicyStatus fields other than `header`, in definition order."""
    return tuple(spec.name for spec in field_specs(default_typestore(), POLICY_STATUS) if spec.name != "header")


def encode_policy_status(
    new: MessageFactory, status: Mapping[str, Any] | Any, *, stamp: float, frame_id: str = ""
) -> Any:
    """`status`: a mapping or dataclass whose keys are PolicyStatus field names (any subset)."""
    if dataclasses.is_dataclass(status) and not isinstance(status, type):
        values = {f.name: getattr(status, f.name) for f in dataclasses.fields(status)}
    elif isinstance(status, Mapping):
        values = dict(status)
    else:
        raise TypeError(f"status must be a mapping or a dataclass instance, got {type(status).__name__}")
    unknown = sorted(set(values) - set(status_fields()))
    if unknown:
        raise ValueError(f"PolicyStatus has no field(s) {unknown}; fields are {list(status_fields())}")
    for names_key, values_key in _PAIRED:
        if len(values.get(names_key, ())) != len(values.get(values_key, ())):
            raise ValueError(f"{names_key} and {values_key} must have the same length")
    fields = {
        key: (np.asarray(value, dtype=np.float64) if key == "input_ages" else
              np.asarray(value, dtype=np.uint64) if key in ("clamp_counts", "rejection_counts") else
              list(value) if isinstance(value, list | tuple) else value)
        for key, value in values.items()
    }
    return new(POLICY_STATUS, header=make_header(new, stamp, frame_id), **fields)


def decode_policy_status(msg: Any) -> dict[str, Any]:
    """PolicyStatus -> {'stamp': float, <field>: python value}; sequences become lists."""
    out: dict[str, Any] = {"stamp": header_stamp(msg)}
    for name in status_fields():
        value = get_field(msg, name, POLICY_STATUS)
        if isinstance(value, np.ndarray) or (not isinstance(value, str | bytes) and hasattr(value, "__len__")):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        out[name] = value
    for names_key, values_key in _PAIRED:
        if len(out[names_key]) != len(out[values_key]):
            raise MessageError("length_mismatch", f"{len(out[names_key])} {names_key} but "
                               f"{len(out[values_key])} {values_key}", POLICY_STATUS)
    return out
