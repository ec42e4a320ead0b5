"""The action heads this package ships, registered by importing their modules: the GR00T-style flow-matching head
("flow", the default) and the action-space adapters of model/asa ("pred", "uniform", "vq", "rvq", "fast",
"discrete_pred", "lang", "semlang"). Import heads from here: `build_head`, `head_config_from_dict`, ... of the
registry (`head_registry.py`) then know all of them.
"""

from __future__ import annotations

from vla_policy_node.model.asa import fast, lang, pred, uniform, vq
from vla_policy_node.model.flow_head import FlowHeadConfig, FlowMatchingHead
from vla_policy_node.model.head_registry import (
    HeadEntry,
    build_head,
    head_config_from_dict,
    head_config_to_dict,
    head_entry,
    registered_heads,
)

SHIPPED_MODULES = (fast, lang, pred, uniform, vq)  # imported for their registrations

__all__ = ["FlowHeadConfig", "FlowMatchingHead", "HeadEntry", "build_head", "head_config_from_dict",
           "head_config_to_dict", "head_entry", "registered_heads"]
