"""The backbone's own input step: camera images + instruction -> the tensors its processor makes (chat template,
image tokens, pixel values, padding).

This is the last step of the input pipeline (`model/transforms`) and what `Backbone.prepare` runs. It needs only
the backbone's config, its family and its processor, not the weights, so the pipeline can be built from a
checkpoint directory without loading the model (data loaders, the fast path).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.backbone_config import BackboneConfig
from vla_policy_node.model.families import FamilySpec
from vla_policy_node.spec.types import ObservationError

# Processor outputs that are not model inputs.
_NOT_INPUTS = frozenset({"labels"})


def model_input_names(family: FamilySpec) -> frozenset[str]:
    """The keyword arguments the family's base model's forward takes (what of the processor output to keep)."""
    params = inspect.signature(family.model_cls().forward).parameters
    return frozenset(p for p in params if p not in _NOT_INPUTS and p != "self")


class BackboneInputs:
    """Batch of samples -> model inputs. Padding follows `config.padding_side` (right by default; left for token
    action heads, so decoding continues right after every sample's last real token)."""

    def __init__(self, config: BackboneConfig, family: FamilySpec, processor: ProcessorMixin) -> None:
        if not processor.chat_template:  # e.g. PaliGemma ships none: use (and save) the family's format
            processor.chat_template = family.chat_template
        self.config = config
        self.family = family
        self.processor = processor
        self.input_names = model_input_names(family)

    def __call__(self, images: Sequence[Sequence[np.ndarray]], instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        """images[b]: one HxWx3 uint8 RGB array per camera, in the checkpoint's camera order; instructions[b]: the
        task text (may be empty)."""
        self.validate(images, instructions)
        texts = [self.prompt(len(sample), text) for sample, text in zip(images, instructions, strict=True)]
        batch = self.processor(images=[list(sample) for sample in images], text=texts, return_tensors="pt",
                               padding=True, padding_side=self.config.padding_side)
        return {k: v for k, v in batch.items() if k in self.input_names and isinstance(v, torch.Tensor)}

    def prompt(self, num_images: int, instruction: str) -> str:
        """The chat-templated text of one sample: instruction (cut to `max_instruction_tokens`) and one image
        placeholder per camera, instruction first when `instruction_first`."""
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

    def validate(self, images: Sequence[Sequence[np.ndarray]], instructions: Sequence[str]) -> None:
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
