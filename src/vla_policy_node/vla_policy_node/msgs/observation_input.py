"""Camera and joint-state messages -> a ControlLoop's inputs: decode, hand over with the receive time. One path
for the policy node's subscriptions and the bag replay, so a replay feeds the policy exactly what the live node
would. Undecodable messages are counted per topic, never raised.

Frames are handed over as received (a read-only view of the message where its buffer allows, no resize): the
observation fits them to each camera's model size when the policy reads them (`spec.images.FittedImages`), off
the subscription thread and only for frames that reach the model, or in the inference process."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.msgs.errors import MessageErrorCounter
from vla_policy_node.msgs.images import decode_compressed_image, decode_image
from vla_policy_node.msgs.joints import JointStateData, decode_joint_state
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.spec.embodiment import CameraSpec


class ObservationInput:
    def __init__(self, loop: ControlLoop, clock: Callable[[], float],
                 errors: MessageErrorCounter | None = None) -> None:
        self.loop = loop
        self.clock = clock
        self.errors = errors if errors is not None else MessageErrorCounter()
        self.joint_topic = loop.embodiment.joint_states.topic

    def image_handler(self, camera: CameraSpec) -> Callable[[Any], bool]:
        """The handler of `camera`'s topic (sensor_msgs/Image, or CompressedImage when `camera.compressed`)."""
        decoder = decode_compressed_image if camera.compressed else partial(decode_image, copy=False)

        def on_image(msg: Any) -> bool:
            rgb = self.errors.decode(decoder, msg, topic=camera.topic)
            if rgb is None:
                return False
            encoding = str(msg.format if camera.compressed else msg.encoding)
            return self.loop.on_image(camera.name, header_stamp(msg), rgb, encoding, self.clock())

        return on_image

    def on_joint_state(self, msg: Any) -> bool:
        return self.on_joint_state_data(self.decode_joint_state(msg))

    def decode_joint_state(self, msg: Any) -> JointStateData | None:
        """The message decoded, or None (counted): for a caller that also reads it (the replay's reference), so
        that it is decoded once."""
        return self.errors.decode(decode_joint_state, msg, topic=self.joint_topic)

    def on_joint_state_data(self, data: JointStateData | None) -> bool:
        """`on_joint_state` of a message already decoded by `decode_joint_state` (None: it was not decodable)."""
        if data is None:
            return False
        return self.loop.on_joint_state(data.stamp, data.names, data.positions, self.clock())
