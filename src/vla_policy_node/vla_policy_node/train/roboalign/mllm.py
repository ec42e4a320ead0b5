"""The full MLLM (vision tower + decoder + LM head) that RoboAlign aligns, with its action/reasoning tokens.

Stages 1-2 train `*ForConditionalGeneration` (the backbone of the policy drops the LM head); stage 3 loads the
saved directory with `Backbone.build(BackboneConfig(source=...))`, which keeps the layers below the cut. The tiny
variant is built from the same offline configs as the team's tests (`model/tiny.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, PreTrainedModel
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.asa.fast import ACTION_END, ACTION_START
from vla_policy_node.model.families import FamilySpec, family_for_model_type, get_family
from vla_policy_node.model.processors import load_processor
from vla_policy_node.model.tiny import build_tiny_processor, tiny_model_config
from vla_policy_node.model.vocabulary import token_matrices

log = logging.getLogger(__name__)

THINK_START, THINK_END, ANSWER_START, ANSWER_END = "<think>", "</think>", "<answer>", "</answer>"
FORMAT_TOKENS = (THINK_START, THINK_END, ANSWER_START, ANSWER_END, ACTION_START, ACTION_END)
VISION_PREFIXES = ("visual.", "vision_tower.", "vision_model.")  # frozen in every stage (RoboAlign)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class MLLMConfig:
    family: str = "qwen2_5_vl"
    source: str | None = None  # pretrained or aligned directory; None: a tiny random model (tests, demos)
    tiny_layers: int = 4
    image_size: int | None = None  # tiny processor only
    lora: LoraConfig | None = None  # None: full fine-tuning of the language model
    gradient_checkpointing: bool = False
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLLMConfig:
        data = dict(data)
        if data.get("lora") is not None:
            lora = dict(data["lora"])
            if "target_modules" in lora:
                lora["target_modules"] = tuple(lora["target_modules"])
            data["lora"] = LoraConfig(**lora)
        return cls(**data)


def generation_class(family: FamilySpec) -> type[PreTrainedModel]:
    return getattr(transformers, family.model_class.removesuffix("Model") + "ForConditionalGeneration")


def load_mllm(cfg: MLLMConfig, device: str | torch.device = "cpu") -> tuple[PreTrainedModel, ProcessorMixin]:
    """-> (ForConditionalGeneration model, processor); vision tower frozen, everything else trainable."""
    dtype = DTYPES[cfg.dtype]
    if cfg.source is not None:
        family = family_for_model_type(AutoConfig.from_pretrained(cfg.source).model_type)
        model = generation_class(family).from_pretrained(cfg.source, dtype=dtype)
        processor = load_processor(cfg.source, family.processor_class)
    else:
        family = get_family(cfg.family)
        processor = build_tiny_processor(family.name, cfg.image_size)
        config = family.config_cls().from_dict(tiny_model_config(family.name, processor, num_layers=cfg.tiny_layers))
        model = generation_class(family)._from_config(config, dtype=dtype)
    model.to(device)
    freeze_vision(model)
    return model, processor


def freeze_vision(model: torch.nn.Module) -> None:
    for name, param in model.named_parameters():
        param.requires_grad_(not _is_vision(name))


def _is_vision(name: str) -> bool:
    name = name.removeprefix("base_model.model.").removeprefix("model.")
    return name.startswith(VISION_PREFIXES)


def apply_lora(model: PreTrainedModel, lora: LoraConfig) -> torch.nn.Module:
    """LoRA on the language model's linear layers (never the vision tower); token rows stay fully trainable
    so the new action tokens can be learned."""
    from peft import LoraConfig as PeftLora
    from peft import get_peft_model

    pattern = r"^(?!.*(visual|vision_tower|vision_model)).*\.(" + "|".join(lora.target_modules) + r")$"
    peft_model = get_peft_model(model, PeftLora(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                target_modules=pattern))
    for weight in token_matrices(model):
        weight.requires_grad_(True)
    return peft_model


def prepare_model(cfg: MLLMConfig, model: PreTrainedModel) -> torch.nn.Module:
    """LoRA and gradient checkpointing as configured; returns the module to train."""
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.lora is not None:
        return apply_lora(model, cfg.lora)
    return model


def save_mllm(model: torch.nn.Module, processor: ProcessorMixin, directory: str | Path) -> Path:
    """save_pretrained (safetensors) + processor; LoRA is merged so stage 3 loads a plain model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return directory
