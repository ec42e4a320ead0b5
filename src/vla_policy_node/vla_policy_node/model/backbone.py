"""The vision-language backbone of the policy: a transformers VLM cut at one decoder layer, used as a feature extractor.

GR00T N1.5 reads layer 12 of its VLM and RoboAlign layer 18 of Qwen2.5-VL-7B. The layers above `select_layer`
are removed from the model *and* its config (they would cost memory and time for nothing), the LM head is never
built (the base `*Model` class has none) and the final norm is replaced by identity, so the features are exactly
the hidden state output of decoder layer `select_layer` (`hidden_states[select_layer]` of the full model; with
select_layer == all layers, that is the last layer's output before the final norm). One nuance: Qwen3-VL adds its
"deepstack" visual features to the residual stream after each of its first few layers (3 for the released
models); at such a layer our features include that addition (what the next layer would read), while transformers'
`hidden_states` records the layer output before it. For a cut at layer >= 4 the two agree.

Inputs come from `backbone_inputs.BackboneInputs` (the processor and chat template; `prepare`). Padding: batches
are RIGHT-padded by default (`padding_side="left"` for token action heads, so that tokens decoded after the prompt
follow every sample's last real token without a gap). The returned mask is True on real tokens; features at
padding are zero. Instructions may be empty (a single-task policy has none); requiring one is the policy's
decision, not ours.

Token action heads (model/asa) decode through `token_decoder.py` (KV cache) and get their vocabulary ids through
`vocabulary.py`. A backbone built from a bare `model_config` (random weights) needs its processor passed in:
test-size models get theirs from `model/tiny.py`, which production code never imports.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.backbone_config import BackboneConfig, LoraSpec
from vla_policy_node.model.backbone_inputs import BackboneInputs
from vla_policy_node.model.families import FamilySpec, resolve_family
from vla_policy_node.model.processors import load_processor
from vla_policy_node.model.qwen_fast import linear_patch_embeds

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Per-layer config lists that must shrink with num_hidden_layers.
PER_LAYER_KEYS = ("layer_types", "no_rope_layers")
__all__ = ["Backbone", "BackboneConfig", "LoraSpec", "truncate_config"]


class Backbone(nn.Module):
    """Images + instruction -> per-token features [B, T, hidden_size] from decoder layer `select_layer`."""

    def __init__(self, config: BackboneConfig, family: FamilySpec, model: PreTrainedModel,
                 processor: ProcessorMixin) -> None:
        super().__init__()
        self.config = config
        self.family = family
        self.model = model
        self.processor = processor
        self.inputs = BackboneInputs(config, family, processor)
        self.hidden_size: int = family.text_config(model.config).hidden_size
        self.num_layers: int = len(family.layers(model))

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, cfg: BackboneConfig, processor: ProcessorMixin | None = None,
              device: str | torch.device | None = None) -> Backbone:
        """From `cfg.source` (pretrained weights, layers above the cut never loaded, its processor unless one is
        given) or `cfg.model_config` (random init; the processor must be given: `tiny.tiny_processor(cfg)` for
        test-size models). `device` places the weights there while loading (a 7B model never has to sit on the
        CPU)."""
        if cfg.source is not None:
            config = AutoConfig.from_pretrained(cfg.source)
            family = resolve_family(cfg.family, config.model_type)
            config = truncate_config(config, cfg.select_layer)
            model = _load_pretrained(family, cfg, config, device)
            if processor is None:
                processor = load_processor(cfg.source, family.processor_class, **cfg.processor_kwargs)
        else:
            family = resolve_family(cfg.family, cfg.model_type())
            if processor is None:
                raise ValueError("a backbone built from model_config (random weights) needs its processor: pass "
                                 "processor= (test-size models: vla_policy_node.model.tiny.tiny_processor(cfg))")
            config = truncate_config(_config_from_dict(family, cfg.model_config), cfg.select_layer)
            with torch.device(device or "cpu"):
                model = family.model_cls()._from_config(config, **_model_kwargs(cfg))
        return cls._assemble(cfg, family, model, processor)

    @classmethod
    def from_checkpoint_dir(cls, cfg: BackboneConfig, directory: str | Path,
                            device: str | torch.device | None = None) -> Backbone:
        """Structure from `cfg.model_config`, processor from `directory`; weights are NOT loaded.

        Parameters are allocated without random init (they hold garbage until the caller loads the state
        dict, strictly); `device` lets them be allocated straight on the GPU.
        """
        from transformers.initialization import no_init_weights

        if cfg.model_config is None:
            raise ValueError("from_checkpoint_dir needs cfg.model_config (Backbone.model_config_dict())")
        family = resolve_family(cfg.family, cfg.model_type())
        config = truncate_config(_config_from_dict(family, cfg.model_config), cfg.select_layer)
        with no_init_weights(), torch.device(device or "cpu"):
            model = family.model_cls()._from_config(config, **_model_kwargs(cfg))
        return cls._assemble(cfg, family, model, load_checkpoint_processor(cfg, directory))

    @classmethod
    def _assemble(cls, cfg: BackboneConfig, family: FamilySpec, model: PreTrainedModel,
                  processor: ProcessorMixin) -> Backbone:
        text_model = family.text_model(model)
        kept = len(family.layers(model))
        if kept != cfg.select_layer:  # pragma: no cover - guards the truncation invariant
            raise RuntimeError(f"model has {kept} decoder layers after the cut, expected {cfg.select_layer}")
        text_model.norm = nn.Identity()  # features are the raw output of the last kept layer
        linear_patch_embeds(model)  # Qwen vision patch embeddings: same weights, a matmul instead of a Conv3d
        if cfg.lora is not None:
            _inject_lora(text_model, cfg.lora)
        for name, param in model.named_parameters():
            param.requires_grad_(not cfg.freeze or (cfg.lora is not None and "lora_" in name))
        if cfg.gradient_checkpointing and (not cfg.freeze or cfg.lora is not None):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        backbone = cls(cfg, family, model, processor)
        backbone.train(False)
        return backbone

    # ------------------------------------------------------------------ checkpoint helpers
    def model_config_dict(self) -> dict[str, Any]:
        """The truncated transformers config as plain JSON data; rebuild with `from_checkpoint_dir`."""
        return json.loads(self.model.config.to_json_string(use_diff=False))

    def checkpoint_config(self) -> BackboneConfig:
        """This backbone's config with `model_config` set to the truncated config and no `source`."""
        return replace(self.config, source=None, model_config=self.model_config_dict())

    def save_processor(self, directory: str | Path) -> None:
        self.processor.save_pretrained(str(directory))

    # ------------------------------------------------------------------ inputs
    def prepare(self, images: Sequence[Sequence[np.ndarray]], instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Batch of samples -> model inputs (`BackboneInputs`). images[b]: one HxWx3 uint8 RGB array per camera, in
        the checkpoint's camera order; instructions[b]: the task text (may be empty)."""
        return self.inputs(images, instructions)

    def model_kwargs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's inputs among `inputs`, on the model's device (floating ones in its dtype)."""
        param = next(self.model.parameters())
        return {
            k: v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device)
            for k, v in inputs.items() if k in self.inputs.input_names
        }

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> features [B, T, hidden_size] (zero at padding), mask [B, T] bool (True = real token)."""
        kwargs = self.model_kwargs(inputs)
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.model.parameters())
        with nullcontext() if needs_grad else torch.no_grad():
            out = self.model(**kwargs, use_cache=False, return_dict=True)
        mask = kwargs["attention_mask"].bool()
        return out.last_hidden_state.masked_fill(~mask[..., None], 0.0), mask

    # ------------------------------------------------------------------ vocabulary
    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def vocab_size(self) -> int:
        return int(self.input_embeddings.num_embeddings)

    def train(self, mode: bool = True) -> Backbone:
        """A backbone with nothing to train stays in eval mode (no dropout) when the policy trains its head."""
        super().train(mode)
        if not any(p.requires_grad for p in self.model.parameters()):
            self.model.eval()
        return self


def load_checkpoint_processor(cfg: BackboneConfig, directory: str | Path) -> ProcessorMixin:
    """The processor saved in a checkpoint directory, with its family's (image-only) class. No processor_kwargs:
    they shaped the processor before it was saved, and are baked into its files."""
    return load_processor(directory, resolve_family(cfg.family, cfg.model_type()).processor_class)


# ---------------------------------------------------------------------- helpers
def truncate_config(config: PretrainedConfig, select_layer: int) -> PretrainedConfig:
    """Keep `select_layer` decoder layers in the text config (idempotent; per-layer lists shrink too)."""
    text = config.get_text_config()
    total = text.num_hidden_layers
    if not 1 <= select_layer <= total:
        raise ValueError(f"select_layer={select_layer} is outside 1..{total} (the model's decoder layers)")
    text.num_hidden_layers = select_layer
    for key in PER_LAYER_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, list | tuple) and len(value) == total:
            setattr(text, key, list(value[:select_layer]))
    return config


def _model_kwargs(cfg: BackboneConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dtype": DTYPES[cfg.dtype]}
    if cfg.attn_implementation is not None:
        kwargs["attn_implementation"] = cfg.attn_implementation
    return kwargs


def _config_from_dict(family: FamilySpec, data: dict[str, Any] | None) -> PretrainedConfig:
    return family.config_cls().from_dict(copy.deepcopy(data))


def _load_pretrained(family: FamilySpec, cfg: BackboneConfig, config: PretrainedConfig,
                     device: str | torch.device | None) -> PreTrainedModel:
    """Load the base model with the truncated config: weights of removed layers and the LM head are skipped.

    transformers' own load report would list every skipped tensor as UNEXPECTED; we silence it, fail on
    missing or mismatched tensors, and warn only about unexpected ones the cut does not explain.
    """
    report_logger = logging.getLogger("transformers.modeling_utils")
    level = report_logger.level
    report_logger.setLevel(logging.ERROR)
    try:
        extra = {} if device is None else {"device_map": str(device)}
        model, info = family.model_cls().from_pretrained(cfg.source, config=config, output_loading_info=True,
                                                          **_model_kwargs(cfg), **extra)
    finally:
        report_logger.setLevel(level)
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        raise RuntimeError(f"{cfg.source}: {len(missing)} weights missing (e.g. {missing[:5]}), {len(mismatched)} "
                           f"mismatched (e.g. {list(mismatched)[:5]}); it does not fit {family.model_class}")
    unexplained = [k for k in info.get("unexpected_keys") or [] if not _removed_by_cut(k, cfg.select_layer)]
    if unexplained:
        log.warning("%s: %d checkpoint tensors not used by %s (e.g. %s)", cfg.source, len(unexplained),
                    family.model_class, sorted(unexplained)[:5])
    log.info("loaded %s from %s: %d decoder layers kept", family.model_class, cfg.source, cfg.select_layer)
    return model


def _removed_by_cut(key: str, select_layer: int) -> bool:
    """LM head, or a layer index the cut removed (vision towers keep all their layers, so these are decoder's)."""
    if key.startswith("lm_head") or ".lm_head." in key:
        return True
    match = re.search(r"(?:^|\.)layers\.(\d+)\.", key)
    return match is not None and int(match.group(1)) >= select_layer


def _inject_lora(text_model: nn.Module, spec: LoraSpec) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=list(spec.target_modules), bias="none")
    inject_adapter_in_model(lora, text_model)
