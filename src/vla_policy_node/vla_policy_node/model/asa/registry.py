"""Adapter name -> class."""

from __future__ import annotations

from pathlib import Path

from vla_policy_node.model.asa.base import ActionSpaceAdapter
from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.fast import FastAdapter
from vla_policy_node.model.asa.lang import LangAdapter, SemLangAdapter
from vla_policy_node.model.asa.pred import DiscretePredAdapter, PredAdapter
from vla_policy_node.model.asa.uniform import UniformAdapter
from vla_policy_node.model.asa.vq import RVQAdapter, VQAdapter

ADAPTER_CLASSES: dict[str, type[ActionSpaceAdapter]] = {
    cls.name: cls
    for cls in (PredAdapter, UniformAdapter, VQAdapter, RVQAdapter, FastAdapter, DiscretePredAdapter, LangAdapter,
                SemLangAdapter)
}


def build_adapter(config: ASAHeadConfig, directory: Path | None = None) -> ActionSpaceAdapter:
    return ADAPTER_CLASSES[config.adapter].from_config(config, directory)
