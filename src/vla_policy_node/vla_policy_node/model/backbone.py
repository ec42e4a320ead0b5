"""The vision-language backbone of the policy: a transformers VLM cut at one decoder layer, used as a feature extractor.

GR00T N1.5 reads layer 12 of its VLM and RoboAlign layer 18 of Qwen2.5-VL-7B. The layers above `select_layer`
are removed from the model *and* its config (they would cost memory and time for nothing), the LM head is never
built (the base `*Model` class has none) and the final norm is replaced by identity, so the features are exactly
the hidden state output of decoder layer `select_layer` (`hidden_states[select_layer]` of the full model; with
select_layer == all layers, that is the last layer's output before the final norm). One nuance: Qwen3-VL adds its
"deepstack" visual features to the residual stream after each of its first few layers (3 for the released
models); at such a layer our features include that addition (what the next layer would read), while transformers'
`hidden_states` records the layer output before it. For a cut at layer >= 4 the two agree.

Padding: batches are RIGHT-padded by default (`padding_side="left"` for token action heads, so that tokens decoded
after the prompt follow every sample's last real token without a gap). The returned mask is True on real tokens;
features at padding are zero. Instructions may be empty (a single-task policy has none); requiring one is the
policy's decision, not ours.

Token action heads (model/asa) also use: the LM's input embeddings (`embed_tokens`), vocabulary growth
(`add_tokens`) or reuse of rarely used ids (`rare_token_ids`), and KV-cache decoding (`prefill` once per chunk,
then `decode_step` per action token, fed as `inputs_embeds`).
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.families import FamilySpec, family_for_model_type, get_family
from vla_policy_node.model.processors import load_processor
from vla_policy_node.model.qwen_fast import linear_patch_embeds
from vla_policy_node.spec.types import ObservationError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Per-layer config lists that must shrink with num_hidden_layers.
PER_LAYER_KEYS = ("layer_types", "no_rope_layers")
# Processor outputs that are not model inputs.
_NOT_INPUTS = frozenset({"labels"})


@dataclass(frozen=True)
class LoraSpec:
    """LoRA on the language model only (the vision tower stays frozen)."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0 or not self.target_modules:
            raise ValueError(f"invalid LoraSpec: {self}")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


@dataclass(frozen=True)
class BackboneConfig:
    """How to build the backbone. Serializable with `to_dict` / `from_dict` (checkpoint config JSON).

    source: local dir or hub id for `from_pretrained`; None -> random init from `model_config` (tests), and
        `Backbone.from_checkpoint_dir` always builds from `model_config` (the truncated config it saved).
    select_layer: decoder layers kept (1-based); features are the output of the last kept layer.
    num_cameras: when set, every sample must bring exactly this many images.
    max_instruction_tokens: longer instructions are cut to this many tokens (bounds latency and context).
    processor_kwargs: forwarded to the processor's `from_pretrained` (e.g. Qwen's `max_pixels`, the per-camera
        token budget) or, without a source, to `tiny.build_tiny_processor` (e.g. `image_size`). Not used by
        `from_checkpoint_dir`: the saved processor already carries them.
    instruction_first: put the instruction before the camera images in the prompt. In a causal decoder the
        image tokens can then attend to the task text (language-conditioned vision, as FiLM does in RT-1), which
        lets a small model learn which object the instruction names; with images first only the text tokens see
        both. Default False: the order the families' chat formats use for image questions.
    """

    family: str = "qwen2_5_vl"  # qwen2_5_vl | qwen3_vl | paligemma | idefics3 | smolvlm | auto
    source: str | None = None
    model_config: dict[str, Any] | None = None
    select_layer: int = 12
    freeze: bool = True
    lora: LoraSpec | None = None
    dtype: str = "float32"  # "bfloat16" on GPU
    attn_implementation: str | None = None  # None: transformers picks (sdpa where supported)
    num_cameras: int | None = None
    max_instruction_tokens: int | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    gradient_checkpointing: bool = False
    padding_side: str = "right"  # "left" for token action heads (KV-cache decoding after the prompt)
    instruction_first: bool = False

    def __post_init__(self) -> None:
        if self.source is None and self.model_config is None:
            raise ValueError("BackboneConfig needs a `source` (pretrained) or a `model_config` dict")
        if self.select_layer < 1:
            raise ValueError(f"select_layer must be >= 1, got {self.select_layer}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.lora is not None and not self.freeze:
            raise ValueError("lora trains only the adapters: use freeze=True with lora (freeze=False = full tuning)")
        if self.num_cameras is not None and self.num_cameras < 1:
            raise ValueError(f"num_cameras must be >= 1, got {self.num_cameras}")
        if self.max_instruction_tokens is not None and self.max_instruction_tokens < 1:
            raise ValueError(f"max_instruction_tokens must be >= 1, got {self.max_instruction_tokens}")
        if self.padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}")
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", LoraSpec(**self.lora))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneConfig:
        return cls(**data)


class Backbone(nn.Module):
    """Images + instruction -> per-token features [B, T, hidden_size] from decoder layer `select_layer`."""

    def __init__(self, config: BackboneConfig, family: FamilySpec, model: PreTrainedModel,
                 processor: ProcessorMixin) -> None:
        super().__init__()
        self.config = config
        self.family = family
        self.model = model
        self.processor = processor
        self.hidden_size: int = family.text_config(model.config).hidden_size
        self.num_layers: int = len(family.layers(model))
        params = inspect.signature(model.forward).parameters
        self._input_names = frozenset(p for p in params if p not in _NOT_INPUTS)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, cfg: BackboneConfig, processor: ProcessorMixin | None = None,
              device: str | torch.device | None = None) -> Backbone:
        """From `cfg.source` (pretrained weights, layers above the cut never loaded) or `cfg.model_config`
        (random init). Without a source and a processor, a tiny offline processor is built (tests, demos).
        `device` places the weights there while loading (a 7B model never has to sit on the CPU)."""
        if cfg.source is not None:
            config = AutoConfig.from_pretrained(cfg.source)
            family = _resolve_family(cfg, config.model_type)
            config = truncate_config(config, cfg.select_layer)
            model = _load_pretrained(family, cfg, config, device)
            if processor is None:
                processor = load_processor(cfg.source, family.processor_class, **cfg.processor_kwargs)
        else:
            family = _resolve_family(cfg, _model_type(cfg))
            config = truncate_config(_config_from_dict(family, cfg.model_config), cfg.select_layer)
            with torch.device(device or "cpu"):
                model = family.model_cls()._from_config(config, **_model_kwargs(cfg))
            if processor is None:
                processor = _tiny_processor(family, cfg, config)
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
        family = _resolve_family(cfg, _model_type(cfg))
        config = truncate_config(_config_from_dict(family, cfg.model_config), cfg.select_layer)
        with no_init_weights(), torch.device(device or "cpu"):
            model = family.model_cls()._from_config(config, **_model_kwargs(cfg))
        # No processor_kwargs here: they shaped the processor before it was saved, and are baked into its files.
        processor = load_processor(directory, family.processor_class)
        return cls._assemble(cfg, family, model, processor)

    @classmethod
    def _assemble(cls, cfg: BackboneConfig, family: FamilySpec, model: PreTrainedModel,
                  processor: ProcessorMixin) -> Backbone:
        text_model = family.text_model(model)
        kept = len(family.layers(model))
        if kept != cfg.select_layer:  # pragma: no cover - guards the truncation invariant
            raise RuntimeError(f"model has {kept} decoder layers after the cut, expected {cfg.select_layer}")
        text_model.norm = nn.Identity()  # features are the raw output of the last kept layer
        linear_patch_embeds(model)  # Qwen vision patch embeddings: same weights, a matmul instead of a Conv3d
        if not processor.chat_template:  # e.g. PaliGemma ships none: use (and save) the family's format
            processor.chat_template = family.chat_template
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
        """Batch of samples -> model inputs (right-padded). images[b]: one HxWx3 uint8 RGB array per camera, in the
        embodiment's camera order; instructions[b]: the task text (may be empty)."""
        self._validate(images, instructions)
        texts = [self._prompt(len(sample), text) for sample, text in zip(images, instructions, strict=True)]
        batch = self.processor(images=[list(sample) for sample in images], text=texts, return_tensors="pt",
                               padding=True, padding_side=self.config.padding_side)
        return {k: v for k, v in batch.items() if k in self._input_names and isinstance(v, torch.Tensor)}

    def _prompt(self, num_images: int, instruction: str) -> str:
        limit = self.config.max_instruction_tokens
        if limit is not None:
            ids = self.processor.tokenizer(instruction, add_special_tokens=False)["input_ids"]
            if len(ids) > limit:
                instruction = self.processor.tokenizer.decode(ids[:limit])
        content: list[dict[str, str]] = [{"type": "image"} for _ in range(num_images)]
        text = {"type": "text", "text": instruction}
        content = [text, *content] if self.config.instruction_first else [*content, text]
        return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)

    def _validate(self, images: Sequence[Sequence[np.ndarray]], instructions: Sequence[str]) -> None:
        if isinstance(instructions, str):
            raise ObservationError("instructions must be a list of strings (one per sample), got a single str")
        if len(images) != len(instructions) or len(images) == 0:
            raise ObservationError(f"need one image list per instruction and a non-empty batch; got {len(images)} "
                                   f"image lists and {len(instructions)} instructions")
        counts = {len(sample) for sample in images}
        expected = self.config.num_cameras
        if expected is not None and counts != {expected}:
            raise ObservationError(f"backbone expects {expected} camera images per sample, got {sorted(counts)}")
        if len(counts) != 1 or 0 in counts:
            raise ObservationError(f"every sample needs the same number (>= 1) of camera images, got {sorted(counts)}")
        for b, (sample, text) in enumerate(zip(images, instructions, strict=True)):
            if not isinstance(text, str):
                raise ObservationError(f"sample {b}: instruction must be a str, got {type(text).__name__}")
            for c, image in enumerate(sample):
                if not isinstance(image, np.ndarray):
                    raise ObservationError(
                        f"sample {b}, camera {c}: expected a numpy array, got {type(image).__name__}")
                if image.dtype != np.uint8:
                    raise ObservationError(f"sample {b}, camera {c}: expected uint8 RGB, got dtype {image.dtype}")
                if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
                    raise ObservationError(f"sample {b}, camera {c}: expected HxWx3 RGB, got shape {image.shape}")

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> features [B, T, hidden_size] (zero at padding), mask [B, T] bool (True = real token)."""
        param = next(self.model.parameters())
        kwargs = {
            k: v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device)
            for k, v in inputs.items() if k in self._input_names
        }
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.model.parameters())
        with nullcontext() if needs_grad else torch.no_grad():
            out = self.model(**kwargs, use_cache=False, return_dict=True)
        mask = kwargs["attention_mask"].bool()
        return out.last_hidden_state.masked_fill(~mask[..., None], 0.0), mask

    # ------------------------------------------------------------------ tokens (action heads)
    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> the LM's input embeddings (what `input_ids` would feed), for `decode_step`."""
        return self.input_embeddings(ids.to(self.input_embeddings.weight.device))

    @property
    def vocab_size(self) -> int:
        return int(self.input_embeddings.num_embeddings)

    def add_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Add `tokens` to the tokenizer (as special tokens: never split, never merged) and grow the embedding
        matrix to cover them. New rows start at the mean of the existing ones (a neutral, in-distribution
        input). Returns their ids. Tokens already present keep their ids and rows."""
        tokenizer = self.processor.tokenizer
        before = self.vocab_size
        fresh = [t for t in tokens if t not in tokenizer.get_vocab()]
        if fresh:
            tokenizer.add_tokens(list(fresh), special_tokens=True)
        ids = [int(i) for i in tokenizer.convert_tokens_to_ids(list(tokens))]
        size = max(before, len(tokenizer))
        if size > before:
            self.model.resize_token_embeddings(size, mean_resizing=False)
            for cfg in (self.model.config, self.model.config.get_text_config()):
                if hasattr(cfg, "vocab_size"):
                    cfg.vocab_size = size
        fresh_ids = sorted(set(tokenizer.convert_tokens_to_ids(fresh)))
        if fresh_ids:
            weight = self.input_embeddings.weight
            with torch.no_grad():
                keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
                keep[fresh_ids] = False
                weight[fresh_ids] = weight[keep].mean(0, keepdim=True)
        # resize builds a new matrix; it trains exactly when the backbone is fully trained (LoRA skips embeddings)
        self.input_embeddings.weight.requires_grad_(not self.config.freeze)
        return ids

    def rare_token_ids(self, count: int) -> list[int]:
        """`count` ids of the base vocabulary that the text uses least: the last ids of the byte-pair vocabulary
        (merges are learned most-frequent first, so the last ones are the rarest; OpenVLA's convention), skipping
        special and added tokens. Ascending order."""
        tokenizer = self.processor.tokenizer
        reserved = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        base = [i for i in range(min(tokenizer.vocab_size, self.vocab_size)) if i not in reserved]
        if count > len(base):
            raise ValueError(f"asked for {count} rarely used token ids, the vocabulary has only {len(base)} "
                             "non-special ones; add new tokens instead (token strategy 'new')")
        return base[len(base) - count:]

    # ------------------------------------------------------------------ KV-cache decoding (action heads)
    def prefill(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, DecodeState]:
        """Run the prompt (images + text) once and keep the KV cache. Needs LEFT-padded inputs, so the last
        position is every sample's last real token. Returns its hidden state [B, H] and the decoding state."""
        param = next(self.model.parameters())
        kwargs = {
            k: v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device)
            for k, v in inputs.items() if k in self._input_names
        }
        mask = kwargs["attention_mask"]
        if not bool(mask[:, -1].all()):
            raise ValueError("prefill needs left-padded inputs (BackboneConfig.padding_side='left')")
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.model.parameters())
        with nullcontext() if needs_grad else torch.no_grad():
            out = self.model(**kwargs, use_cache=True, return_dict=True)
        if out.past_key_values is None:
            raise RuntimeError("the model returned no KV cache (gradient checkpointing disables it while training)")
        if self.family.positions == "mrope":
            deltas = self.model.rope_deltas.reshape(-1).to(mask.device)
            next_position = mask.sum(-1) + deltas  # max position of the prompt + 1 (mrope_position_deltas)
        else:
            next_position = torch.full_like(mask[:, 0], mask.shape[1] + self.family.position_offset)
        state = DecodeState(cache=out.past_key_values, attention_mask=mask.long(), next_position=next_position.long())
        return out.last_hidden_state[:, -1], state

    def decode_step(self, state: DecodeState, embeds: torch.Tensor) -> torch.Tensor:
        """Append `embeds` [B, T, H] (action-token or state embeddings) after everything decoded so far, using and
        extending the KV cache in `state`. Returns their hidden states [B, T, H] at the cut layer.

        Runs with gradients whenever autograd is on: even with a frozen backbone the loss must reach the
        embeddings fed here (the action head's own embedding table and state token)."""
        b, t, _ = embeds.shape
        device = state.attention_mask.device
        steps = torch.arange(t, device=device)
        positions = state.next_position[:, None] + steps[None, :]
        if self.family.positions == "mrope":
            positions = positions[None].expand(3, b, t)
        mask = torch.cat([state.attention_mask, torch.ones(b, t, dtype=torch.long, device=device)], dim=1)
        param = next(self.model.parameters())
        out = self.model(inputs_embeds=embeds.to(param.dtype), attention_mask=mask, position_ids=positions,
                         past_key_values=state.cache, use_cache=True, return_dict=True)
        state.cache = out.past_key_values
        state.attention_mask = mask
        state.next_position = state.next_position + t
        return out.last_hidden_state

    def train(self, mode: bool = True) -> Backbone:
        """A backbone with nothing to train stays in eval mode (no dropout) when the policy trains its head."""
        super().train(mode)
        if not any(p.requires_grad for p in self.model.parameters()):
            self.model.eval()
        return self


@dataclass
class DecodeState:
    """What continuing a batch of prompts needs: the KV cache, the attention mask over everything so far
    (prompt padding included) and each sample's next position id."""

    cache: Any
    attention_mask: torch.Tensor  # [B, T_so_far] long
    next_position: torch.Tensor  # [B] long


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


def _model_type(cfg: BackboneConfig) -> str:
    model_type = (cfg.model_config or {}).get("model_type")
    if not model_type:
        raise ValueError("model_config needs a 'model_type' entry")
    return model_type


def _resolve_family(cfg: BackboneConfig, model_type: str) -> FamilySpec:
    if cfg.family == "auto":
        return family_for_model_type(model_type)
    family = get_family(cfg.family)
    if model_type not in family.model_types:
        raise ValueError(f"family {cfg.family!r} does not match the model's model_type {model_type!r}")
    return family


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


def _tiny_processor(family: FamilySpec, cfg: BackboneConfig, config: PretrainedConfig) -> ProcessorMixin:
    from vla_policy_node.model.tiny import build_tiny_processor

    kwargs = dict(cfg.processor_kwargs)
    vision_size = getattr(getattr(config, "vision_config", None), "image_size", None)
    if "image_size" not in kwargs and isinstance(vision_size, int):
        kwargs["image_size"] = vision_size
    return build_tiny_processor(family.name, **kwargs)


def _inject_lora(text_model: nn.Module, spec: LoraSpec) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=list(spec.target_modules), bias="none")
    inject_adapter_in_model(lora, text_model)
