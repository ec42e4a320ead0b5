"""How a backbone is built: `BackboneConfig` (stored in a checkpoint's vla_config.json) and its LoRA settings.

Kept apart from `backbone.py` so that what only needs the config (the input pipeline, the checkpoint reader)
does not have to import the model code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

DTYPE_NAMES = ("float32", "bfloat16", "float16")


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
        token budget) or, for a config-only (random, test-size) model, to the tiny processor builder
        (`model/tiny.py`, e.g. `image_size`). Not used by `from_checkpoint_dir`: the saved processor already
        carries them.
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
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {self.dtype!r}")
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

    def model_type(self) -> str:
        """`model_config["model_type"]` (config-built and checkpoint backbones)."""
        model_type = (self.model_config or {}).get("model_type")
        if not model_type:
            raise ValueError("model_config needs a 'model_type' entry")
        return model_type
