"""Registry of the VLM families the backbone supports: where each keeps its decoder, and how to build it.

One table instead of `if family == ...` branches: adding a family is one entry (plus its tiny builders in
`tiny.py` for the tests). Model and config classes are named, not imported, so only the family in use is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import transformers
from torch import nn
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model import processors as P


@dataclass(frozen=True)
class FamilySpec:
    """model_class is the base model (vision tower + projector + decoder, no LM head)."""

    name: str
    model_types: tuple[str, ...]  # config.model_type values that mean this family
    model_class: str
    config_class: str
    text_model_attr: str  # attribute of the base model holding the decoder (embed_tokens, layers, norm)
    processor_class: type[ProcessorMixin]
    chat_template: str  # used when a processor ships none
    # Position ids of the decoder, needed to continue a sequence from a KV cache (token action heads):
    # "mrope" = Qwen-VL 3-axis positions from the model's rope_deltas; "1d" = arange (+ position_offset).
    positions: str = "1d"
    position_offset: int = 0  # PaliGemma numbers positions from 1

    def model_cls(self) -> type[transformers.PreTrainedModel]:
        return getattr(transformers, self.model_class)

    def config_cls(self) -> type[PretrainedConfig]:
        return getattr(transformers, self.config_class)

    def text_model(self, model: nn.Module) -> nn.Module:
        return getattr(model, self.text_model_attr)

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return self.text_model(model).layers

    @staticmethod
    def text_config(config: PretrainedConfig) -> PretrainedConfig:
        return config.get_text_config()


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("qwen2_5_vl", ("qwen2_5_vl",), "Qwen2_5_VLModel", "Qwen2_5_VLConfig", "language_model",
                   P.Qwen2_5_VLImageTextProcessor, P.QWEN2_5_VL_TEMPLATE, positions="mrope"),
        FamilySpec("qwen3_vl", ("qwen3_vl",), "Qwen3VLModel", "Qwen3VLConfig", "language_model",
                   P.Qwen3VLImageTextProcessor, P.QWEN3_VL_TEMPLATE, positions="mrope"),
        # PaliGemma 2 is the same model class and model_type with a Gemma 2 decoder.
        FamilySpec("paligemma", ("paligemma",), "PaliGemmaModel", "PaliGemmaConfig", "language_model",
                   transformers.PaliGemmaProcessor, P.PALIGEMMA_TEMPLATE, position_offset=1),
        FamilySpec("idefics3", ("idefics3",), "Idefics3Model", "Idefics3Config", "text_model",
                   transformers.Idefics3Processor, P.IDEFICS3_TEMPLATE),
        FamilySpec("smolvlm", ("smolvlm",), "SmolVLMModel", "SmolVLMConfig", "text_model",
                   P.SmolVLMImageTextProcessor, P.SMOLVLM_TEMPLATE),
    )
}
ALIASES = {"paligemma2": "paligemma", "smolvlm2": "smolvlm", "qwen2.5_vl": "qwen2_5_vl", "qwen2_5vl": "qwen2_5_vl"}


def get_family(name: str) -> FamilySpec:
    key = ALIASES.get(name, name)
    if key not in FAMILIES:
        raise ValueError(f"unknown backbone family {name!r}; known: {sorted(FAMILIES)} (or 'auto')")
    return FAMILIES[key]


def family_for_model_type(model_type: str) -> FamilySpec:
    for spec in FAMILIES.values():
        if model_type in spec.model_types:
            return spec
    raise ValueError(
        f"config.model_type {model_type!r} belongs to no supported family; supported model types: "
        f"{sorted(t for s in FAMILIES.values() for t in s.model_types)}"
    )


def resolve_family(name: str, model_type: str) -> FamilySpec:
    """The family a backbone config names ('auto': the one of its model_type), checked against the model_type."""
    if name == "auto":
        return family_for_model_type(model_type)
    family = get_family(name)
    if model_type not in family.model_types:
        raise ValueError(f"family {name!r} does not match the model's model_type {model_type!r}")
    return family
