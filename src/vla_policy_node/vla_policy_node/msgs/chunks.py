"""vla_msgs/ActionChunk <-> policy.types.ActionChunk (row-major actions, names per dimension)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, check_unique, float_array, get_field, string_list
from vla_policy_node.msgs.stamps import header_stamp, make_header
from vla_policy_node.spec.types import ActionChunk

ACTION_CHUNK = "vla_msgs/msg/ActionChunk"


def encode_action_chunk(
    new: MessageFactory, chunk: ActionChunk, *, frame_id: str = "", inference_latency: float = 0.0
) -> Any:
    return new(
        ACTION_CHUNK,
        header=make_header(new, chunk.stamp, frame_id),
        names=list(chunk.names),
        dt=float(chunk.dt),
        horizon=chunk.horizon,
        actions=np.ascontiguousarray(chunk.actions, dtype=np.float64).reshape(-1),
        inference_latency=float(inference_latency),
    )


def decode_action_chunk(msg: Any) -> ActionChunk:
    names = string_list(get_field(msg, "names", ACTION_CHUNK))
    check_unique(names, "names", ACTION_CHUNK)
    horizon = int(get_field(msg, "horizon", ACTION_CHUNK))
    dt = float(get_field(msg, "dt", ACTION_CHUNK))
    actions = float_array(get_field(msg, "actions", ACTION_CHUNK), "actions", ACTION_CHUNK)
    if horizon <= 0 or not names:
        raise MessageError("empty_chunk", f"horizon {horizon} with {len(names)} dimension names", ACTION_CHUNK)
    if actions.size != horizon * len(names):
        raise MessageError(
            "size_mismatch",
            f"{actions.size} actions but horizon*dims = {horizon}*{len(names)} = {horizon * len(names)}",
            ACTION_CHUNK,
        )
    if not (math.isfinite(dt) and dt > 0):
        raise MessageError("bad_dt", f"dt must be positive and finite, got {dt}", ACTION_CHUNK)
    return ActionChunk(stamp=header_stamp(msg), dt=dt, actions=actions.reshape(horizon, len(names)), names=names)
