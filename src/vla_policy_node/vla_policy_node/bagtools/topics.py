"""Which topics belong to a robot's demonstrations, and how a bag's topics map onto a robot config.

One list serves the recorder (what to subscribe to and how to declare it in the bag) and the readers (what a
bag must contain for a replay or a conversion), so the three tools agree on names and types.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vla_policy_node.msgs.commands import CONTROLLER_MSGTYPES
from vla_policy_node.msgs.fast_cdr import STRING
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE
from vla_policy_node.msgs.joints import FLOAT64_ARRAY, JOINT_STATE
from vla_policy_node.spec.embodiment import CameraSpec, Embodiment
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS, QosProfile

INSTRUCTION_TOPIC = "/vla/instruction"
EPISODE_EVENT_TOPIC = "/vla/episode_event"
MARK_EPISODE_SERVICE = "/vla/recorder/mark_episode"
EPISODE_EVENT = "vla_msgs/msg/EpisodeEvent"
MARK_EPISODE = "vla_msgs/srv/MarkEpisode"

Role = Literal["camera", "joint_states", "command", "gripper_command", "instruction", "episode_event", "extra"]


class BagContentError(ValueError):
    """A bag that lacks what a tool needs (a camera, the joint states, the commands); the message names it."""


@dataclass(frozen=True)
class TopicSpec:
    """One recorded topic. `qos` is what the recorder subscribes with (and declares as offered in the bag)."""

    topic: str
    msgtype: str
    role: Role
    qos: QosProfile = DEFAULT_QOS
    camera: str = ""


def command_topic(embodiment: Embodiment) -> TopicSpec:
    """The arm controller's command topic: what teleoperation (through the mux) actually sent the arm."""
    controller = embodiment.controller
    return TopicSpec(controller.topic, CONTROLLER_MSGTYPES[controller.interface], "command")


def gripper_command_topic(embodiment: Embodiment) -> TopicSpec | None:
    """The gripper's command topic, when it has one (forward_command). GripperCommand *actions* are not topics
    rosbag2 (Humble/Jazzy) records; then the gripper's joint state stands in for its command."""
    gripper = embodiment.gripper
    if gripper is None or gripper.interface != "forward_command":
        return None
    return TopicSpec(gripper.topic, FLOAT64_ARRAY, "gripper_command")


# A recorder subscribes to sensor streams best effort, as a robot node does (that matches every publisher), but
# keeps what arrives while it is busy writing: with sensor data's 5-deep history a CPU-starved `vla_record` kept 26
# of a sim's ~470 joint states in 9 s (a CI run), the rest overwritten before it could take them. A controller wants
# only the newest sample; a recording wants them all. About 1-2 s of a 500-1000 Hz joint-state stream (~0.2 kB
# each) and of a 30 Hz camera (~1 MB per 640x480 frame, held only while the recorder is behind).
RECORD_JOINT_STATES_QOS = dataclasses.replace(SENSOR_DATA_QOS, depth=1000)
RECORD_CAMERA_QOS = dataclasses.replace(SENSOR_DATA_QOS, depth=30)


def robot_topics(embodiment: Embodiment, extra: Mapping[str, str] | None = None) -> list[TopicSpec]:
    """Everything a demonstration of `embodiment` needs: cameras, joint states, commands, instruction, marks."""
    specs = [
        TopicSpec(cam.topic, COMPRESSED_IMAGE if cam.compressed else IMAGE, "camera", RECORD_CAMERA_QOS, cam.name)
        for cam in embodiment.cameras
    ]
    specs.append(TopicSpec(embodiment.joint_states.topic, JOINT_STATE, "joint_states", RECORD_JOINT_STATES_QOS))
    specs.append(command_topic(embodiment))
    gripper = gripper_command_topic(embodiment)
    if gripper is not None:
        specs.append(gripper)
    specs.append(TopicSpec(INSTRUCTION_TOPIC, STRING, "instruction", LATCHED_QOS))
    specs.append(TopicSpec(EPISODE_EVENT_TOPIC, EPISODE_EVENT, "episode_event"))
    taken = {s.topic for s in specs}
    for topic, msgtype in (extra or {}).items():
        if topic in taken:
            raise ValueError(f"extra topic {topic} is already recorded for {embodiment.name}")
        specs.append(TopicSpec(topic, msgtype, "extra"))
    return specs


# ------------------------------------------------------------------------------------------------ reading


def _camera_in_bag(cam: CameraSpec, bag: Mapping[str, str]) -> CameraSpec | None:
    """The camera as the bag recorded it: raw or compressed, on its topic or image_transport's `/compressed`."""
    candidates = [cam.topic, f"{cam.topic}/compressed"]
    if cam.topic.endswith("/compressed"):
        candidates.append(cam.topic.removesuffix("/compressed"))
    for topic in candidates:
        msgtype = bag.get(topic)
        if msgtype == IMAGE:
            return dataclasses.replace(cam, topic=topic, compressed=False)
        if msgtype == COMPRESSED_IMAGE:
            return dataclasses.replace(cam, topic=topic, compressed=True)
    return None


def fit_embodiment_to_bag(
    embodiment: Embodiment, bag_topics: Mapping[str, str], counts: Mapping[str, int] | None = None
) -> Embodiment:
    """`embodiment` with each camera pointing at the topic and encoding (raw/compressed) the bag has.

    BagContentError names every camera or joint-state topic that is missing, has the wrong type or no messages.
    """
    counts = counts or {}
    problems = []
    cameras = []
    image_topics = sorted(t for t, m in bag_topics.items() if m in (IMAGE, COMPRESSED_IMAGE))
    for cam in embodiment.cameras:
        found = _camera_in_bag(cam, bag_topics)
        if found is None:
            problems.append(f"camera {cam.name!r}: no sensor_msgs/Image or CompressedImage on {cam.topic} "
                            f"(or {cam.topic}/compressed); image topics in the bag: {image_topics or 'none'}")
        elif counts.get(found.topic, 1) == 0:
            problems.append(f"camera {cam.name!r}: topic {found.topic} has no messages")
        else:
            cameras.append(found)
    joints = embodiment.joint_states.topic
    if bag_topics.get(joints) != JOINT_STATE:
        have = bag_topics.get(joints)
        problems.append(f"joint states: {joints} " + (f"is {have}, not {JOINT_STATE}" if have else "is missing"))
    elif counts.get(joints, 1) == 0:
        problems.append(f"joint states: topic {joints} has no messages")
    if problems:
        missing = [cam for cam in embodiment.cameras if all(c.name != cam.name for c in cameras)]
        if missing and image_topics:
            kept = [f"{c.name}:{c.topic}" for c in cameras]
            value = ",".join(kept + [f"{c.name}:{image_topics[0]}" for c in missing])
            problems.append(f"to read a camera from another topic: --camera-topics {value}")
        raise BagContentError("; ".join(problems))
    return dataclasses.replace(embodiment, cameras=tuple(cameras))


def has_topic(bag_topics: Mapping[str, str], counts: Mapping[str, int], spec: TopicSpec | None) -> bool:
    """The bag holds `spec`'s topic with its type and at least one message."""
    return spec is not None and bag_topics.get(spec.topic) == spec.msgtype and counts.get(spec.topic, 1) > 0
