"""vla_msgs/InferenceRequest <-> what the model needs besides the pixels (the frames travel on their own topics).

The control node sends, per observation: its stamp, which frame of each camera (by stamp), the state, the
instruction and the RTC prefix. The inference server answers with a vla_msgs/ActionChunk stamped like the
request (msgs.chunks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, float_array, get_field, string_list
from vla_policy_node.msgs.stamps import header_stamp, make_header, make_time, time_to_seconds
from vla_policy_node.spec.types import RtcPrefix

INFERENCE_REQUEST = "vla_msgs/msg/InferenceRequest"


@dataclass(frozen=True)
class InferenceRequestData:
    stamp: float
    sequence: int
    camera_stamps: Mapping[str, float]
    state_names: tuple[str, ...]
    state: np.ndarray
    instruction: str
    prefix: RtcPrefix | None


def encode_inference_request(new: MessageFactory, stamp: float, sequence: int, camera_stamps: Mapping[str, float],
                             state_names: Sequence[str], state: np.ndarray, instruction: str,
                             prefix: RtcPrefix | None) -> Any:
    actions = np.zeros(0) if prefix is None else np.asarray(prefix.actions, np.float64).reshape(-1)
    weights = np.zeros(0) if prefix is None else np.asarray(prefix.weights, np.float64)
    return new(INFERENCE_REQUEST, header=make_header(new, stamp), sequence=int(sequence),
               camera_names=list(camera_stamps), camera_stamps=[make_time(new, s) for s in camera_stamps.values()],
               state_names=list(state_names), state=np.asarray(state, np.float64), instruction=instruction,
               prefix_horizon=0 if prefix is None else int(prefix.actions.shape[0]), prefix_actions=actions,
               prefix_weights=weights)


def decode_inference_request(msg: Any) -> InferenceRequestData:
    names = string_list(get_field(msg, "camera_names", INFERENCE_REQUEST))
    stamps = [time_to_seconds(t) for t in get_field(msg, "camera_stamps", INFERENCE_REQUEST)]
    if len(names) != len(stamps):
        raise MessageError("length_mismatch", f"{len(names)} cameras but {len(stamps)} stamps", INFERENCE_REQUEST)
    state_names = string_list(get_field(msg, "state_names", INFERENCE_REQUEST))
    state = float_array(get_field(msg, "state", INFERENCE_REQUEST), "state", INFERENCE_REQUEST)
    if state.size != len(state_names):
        raise MessageError("length_mismatch", f"{len(state_names)} state names but {state.size} values",
                           INFERENCE_REQUEST)
    horizon = int(get_field(msg, "prefix_horizon", INFERENCE_REQUEST))
    prefix = None
    if horizon:
        actions = float_array(msg.prefix_actions, "prefix_actions", INFERENCE_REQUEST)
        weights = float_array(msg.prefix_weights, "prefix_weights", INFERENCE_REQUEST)
        if weights.size != horizon or actions.size % horizon:
            raise MessageError("size_mismatch", f"prefix of horizon {horizon}: {actions.size} actions, "
                               f"{weights.size} weights", INFERENCE_REQUEST)
        try:
            prefix = RtcPrefix(actions.reshape(horizon, -1), weights)
        except ValueError as error:
            raise MessageError("bad_prefix", str(error), INFERENCE_REQUEST) from None
    return InferenceRequestData(header_stamp(msg), int(msg.sequence), dict(zip(names, stamps, strict=True)),
                                state_names, state, str(msg.instruction), prefix)
