"""ROS 2 name resolution and its mapping onto DDS topic and type names (rmw_cyclonedds conventions)."""

from __future__ import annotations

import re

_VALID_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check(name: str, what: str) -> str:
    if not name or name == "/":
        return "/"
    tokens = name.strip("/").split("/")
    if name.endswith("/") or any(not _VALID_TOKEN.match(token) for token in tokens):
        raise ValueError(
            f"invalid ROS {what} {name!r}: tokens must match [A-Za-z_][A-Za-z0-9_]*, no '//' or trailing '/'"
        )
    return "/" + "/".join(tokens)


def normalize_namespace(namespace: str) -> str:
    return _check(namespace if namespace.startswith("/") else "/" + namespace, "namespace")


def resolve_name(name: str, namespace: str = "/", node_name: str = "") -> str:
    """Fully qualified ROS name: 'x' -> '/ns/x', '/x' -> '/x', '~/x' -> '/ns/node/x'."""
    namespace = normalize_namespace(namespace)
    base = namespace.rstrip("/")
    if name.startswith("~"):
        if not node_name:
            raise ValueError(f"cannot expand {name!r} without a node name")
        name = f"{base}/{node_name}{name[1:]}"
    elif not name.startswith("/"):
        name = f"{base}/{name}"
    return _check(name, "name")


def topic_to_dds(resolved_topic: str) -> str:
    """'/joint_states' -> 'rt/joint_states'."""
    return "rt" + resolved_topic


def service_to_dds(resolved_service: str) -> tuple[str, str]:
    """'/set_paused' -> ('rq/set_pausedRequest', 'rr/set_pausedReply')."""
    return f"rq{resolved_service}Request", f"rr{resolved_service}Reply"


def dds_to_topic(dds_topic: str) -> str | None:
    """Inverse of topic_to_dds; None for DDS topics that are not ROS topics."""
    return dds_topic[2:] if dds_topic.startswith("rt/") else None
