"""Topic remaps and a camera subset on top of a robot config, from a command line or a launch argument.

A robot YAML names its topics once; a real setup often differs: the wrist camera on another topic, no wrist
camera at all, a namespaced driver. Instead of editing the YAML:

- `camera_topics` "scene:/camera/color/image_raw,wrist:/wrist/image_raw": the cameras used, in that order,
  each on that topic (cameras of the config not listed are not read; a name the config lacks becomes a camera
  with the first config camera's resolution and max age). Two cameras may share a topic: a
  checkpoint trained with a wrist camera runs on a robot without one by feeding it the scene camera
  (`wrist:/camera/camera/color/image_raw`), which is a fallback with a known cost, not an equivalent.
- `remaps` ["/joint_states:=/franka/joint_states", ...]: any topic of the config (cameras, joint states,
  controller, gripper) read or written on another name, like ROS's own `--remap from:=to`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from vla_policy_node.spec.embodiment import CameraSpec, ConfigError, Embodiment, is_valid_topic


def parse_camera_topics(text: str) -> tuple[tuple[str, str], ...]:
    """"name:/topic,name:/topic" -> ((name, topic), ...); ConfigError naming the bad item and the form."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, topic = item.partition(":")
        if not sep or not name.strip() or not topic.strip():
            raise ConfigError(f"camera_topics item {item!r}: expected NAME:TOPIC, e.g. "
                              "scene:/camera/camera/color/image_raw")
        pairs.append((name.strip(), topic.strip()))
    names = [name for name, _ in pairs]
    duplicate = sorted({n for n in names if names.count(n) > 1})
    if duplicate:
        raise ConfigError(f"camera_topics names camera(s) {duplicate} more than once")
    return tuple(pairs)


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """["from:=to", ...] -> {from: to}."""
    remaps = {}
    for item in items:
        source, sep, target = item.partition(":=")
        if not sep or not source.strip() or not target.strip():
            raise ConfigError(f"remap {item!r}: expected FROM:=TO, e.g. /joint_states:=/franka/joint_states")
        remaps[source.strip()] = target.strip()
    return remaps


def config_topics(embodiment: Embodiment) -> list[str]:
    topics = [cam.topic for cam in embodiment.cameras]
    topics += [embodiment.joint_states.topic, embodiment.controller.topic]
    if embodiment.gripper is not None and embodiment.gripper.topic:
        topics.append(embodiment.gripper.topic)
    return topics


def remap_embodiment(embodiment: Embodiment, camera_topics: Sequence[tuple[str, str]] | str = (),
                     remaps: Mapping[str, str] | Iterable[str] = ()) -> Embodiment:
    """`embodiment` with the cameras of `camera_topics` (subset, order, topics) and `remaps` applied."""
    if isinstance(camera_topics, str):
        camera_topics = parse_camera_topics(camera_topics)
    if not isinstance(remaps, Mapping):
        remaps = parse_remaps(remaps)
    known = list(config_topics(embodiment))
    unknown = [source for source in remaps if source not in known]
    if unknown:
        raise ConfigError(f"remap {unknown}: {embodiment.name} uses no such topic (its topics: {known})")
    for topic in [*remaps.values(), *(t for _, t in camera_topics)]:
        if not is_valid_topic(topic):
            raise ConfigError(f"{topic!r} is not a valid ROS topic name")

    def mapped(topic: str) -> str:
        return remaps.get(topic, topic)

    cameras = tuple(dataclasses.replace(cam, topic=mapped(cam.topic)) for cam in embodiment.cameras)
    if camera_topics:
        by_name = {cam.name: cam for cam in cameras}
        template = cameras[0] if cameras else CameraSpec("camera", "/camera")
        chosen = []
        for name, topic in camera_topics:
            base = by_name.get(name) or dataclasses.replace(template, name=name)
            compressed = topic.endswith("/compressed") or (base.compressed and topic == base.topic)
            chosen.append(dataclasses.replace(base, topic=topic, compressed=compressed))
        cameras = tuple(chosen)
        for i, cam in enumerate(cameras):
            cam.validate(f"camera_topics[{i}]")
    joint_states = dataclasses.replace(embodiment.joint_states, topic=mapped(embodiment.joint_states.topic))
    controller = dataclasses.replace(embodiment.controller, topic=mapped(embodiment.controller.topic))
    gripper = embodiment.gripper
    if gripper is not None and gripper.topic:
        gripper = dataclasses.replace(gripper, topic=mapped(gripper.topic))
    return dataclasses.replace(embodiment, cameras=cameras, joint_states=joint_states, controller=controller,
                               gripper=gripper)


def camera_hint(needed: Sequence[str], embodiment: Embodiment) -> str:
    """How to give a robot the cameras a checkpoint needs: a camera_topics value that feeds each missing camera
    from a topic the robot has."""
    have = [(cam.name, cam.topic) for cam in embodiment.cameras]
    if not have:
        return "the robot config has no camera topics to map"
    source = have[0][1]
    value = ",".join([f"{n}:{t}" for n, t in have] + [f"{n}:{source}" for n in needed if n not in dict(have)])
    return f"map each onto a topic the robot has: --camera-topics {value} (launch: camera_topics:={value})"
