"""Action heads a VLAModel can carry, by `head.type` in vla_config.json: "flow" (the GR00T-style flow-matching
DiT, the default and what configs without a type mean) or "asa" (an action-space adapter, model/asa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.flow_head import FlowHeadConfig, FlowMatchingHead

HeadConfig = FlowHeadConfig | ASAHeadConfig


def head_type(config: HeadConfig) -> str:
    return getattr(config, "type", "flow")


def head_config_to_dict(config: HeadConfig) -> dict[str, Any]:
    return {"type": head_type(config), **config.to_dict()}


def head_config_from_dict(data: dict[str, Any]) -> HeadConfig:
    data = dict(data)
    kind = data.pop("type", "flow")
    if kind == "flow":
        return FlowHeadConfig(**data)
    if kind == "asa":
        return ASAHeadConfig.from_dict(data)
    raise ValueError(f"unknown head type {kind!r} (known: flow, asa)")


def build_head(config: HeadConfig, directory: str | Path | None = None) -> nn.Module:
    """A head with fresh parameters; `directory` holds extra files a saved head needs (FAST's BPE model)."""
    if head_type(config) == "flow":
        return FlowMatchingHead(config)
    from vla_policy_node.model.asa.registry import build_adapter

    return build_adapter(config, None if directory is None else Path(directory))
