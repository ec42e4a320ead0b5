"""Registry of action heads, as LeRobot registers its policy configs: a head registers its name, its config class
and the class that builds it; checkpoints, `VLAModel` and `VLAPolicy` look heads up here instead of branching on
their type.

A checkpoint's vla_config.json stores a head config under its config class' `type` ("flow", or "asa" for every
action-space adapter, whose `adapter` field then names the head); configs without a type are flow heads (the
format before heads had one). Registration happens when a head's module is imported; `model/heads.py` imports
every head this package ships, so import it (not this module) to see them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vla_policy_node.model.action_head import ActionHead, HeadConfig

DEFAULT_CONFIG_TYPE = "flow"  # what a stored head config without "type" is


@dataclass(frozen=True)
class HeadEntry:
    name: str
    config_cls: type
    head_cls: type[ActionHead]

    def build(self, config: HeadConfig, directory: Path | None = None) -> ActionHead:
        return self.head_cls.from_config(config, directory)


_HEADS: dict[str, HeadEntry] = {}
_CONFIG_TYPES: dict[str, type] = {}

H = TypeVar("H", bound=type[ActionHead])


def register_head(name: str, config_cls: type) -> Callable[[H], H]:
    """Class decorator: `@register_head("flow", FlowHeadConfig)` on the head class."""

    def register(head_cls: H) -> H:
        if getattr(head_cls, "name", name) != name:
            raise ValueError(f"{head_cls.__name__}.name is {head_cls.name!r}, registered as {name!r}")
        if name in _HEADS and _HEADS[name].head_cls is not head_cls:
            raise ValueError(f"head {name!r} is already registered by {_HEADS[name].head_cls.__name__}")
        kind = config_cls.type
        if _CONFIG_TYPES.setdefault(kind, config_cls) is not config_cls:
            raise ValueError(f"config type {kind!r} is already registered by {_CONFIG_TYPES[kind].__name__}")
        _HEADS[name] = HeadEntry(name, config_cls, head_cls)
        return head_cls

    return register


def registered_heads() -> dict[str, HeadEntry]:
    return dict(_HEADS)


def head_entry(name: str) -> HeadEntry:
    if name not in _HEADS:
        raise ValueError(f"unknown action head {name!r}; known: {sorted(_HEADS)}")
    return _HEADS[name]


def head_config_to_dict(config: HeadConfig) -> dict[str, Any]:
    return {"type": config.type, **config.to_dict()}


def head_config_from_dict(data: dict[str, Any]) -> HeadConfig:
    data = dict(data)
    kind = data.pop("type", DEFAULT_CONFIG_TYPE)
    if kind not in _CONFIG_TYPES:
        raise ValueError(f"unknown head type {kind!r} (known: {', '.join(sorted(_CONFIG_TYPES))})")
    config = _CONFIG_TYPES[kind].from_dict(data)
    head_entry(config.head_name)  # a config of a known type naming an unregistered head
    return config


def build_head(config: HeadConfig, directory: str | Path | None = None) -> ActionHead:
    """A head with fresh parameters; `directory` holds extra files a saved head needs (FAST's BPE model)."""
    return head_entry(config.head_name).build(config, None if directory is None else Path(directory))
