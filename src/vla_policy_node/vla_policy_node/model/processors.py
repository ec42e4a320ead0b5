"""Processors of the supported VLM families: image+text only, plus the chat templates we fall back on.

Qwen2.5-VL, Qwen3-VL and SmolVLM ship processors that also own a video processor. Video processors need
torchvision (absent or broken on some machines) and a policy never feeds video, so each of those families gets a
subclass whose only sub-processors are `image_processor` and `tokenizer`. The subclasses read the same files
(`processor_config.json`, tokenizer files, `chat_template.jinja`) as the stock classes and ignore a saved
`video_processor` section, so one loader serves hub checkpoints and our own saved processors. The Qwen subclasses
also compute a batch of same-size camera frames in one numpy pass (`qwen_fast.batch_pixel_values`: the same
pixel values as the image processor's per-image loop, which was most of a small model's training step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import Qwen2_5_VLProcessor, Qwen3VLProcessor, SmolVLMProcessor
from transformers.image_utils import make_flat_list_of_images
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.qwen_fast import batch_pixel_values


class _BatchedQwenImages:
    """`ProcessorMixin._process_images` with the image processor's call replaced by the batched numpy path when
    it applies (else the processor's own)."""

    def _process_images(self, images: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        flat = make_flat_list_of_images(images)
        processed = batch_pixel_values(self.image_processor, flat, kwargs)  # type: ignore[attr-defined]
        if processed is None:
            return super()._process_images(images, **kwargs)  # type: ignore[misc]
        replacements = [self.replace_image_token(processed, image_idx=i, **kwargs)  # type: ignore[attr-defined]
                        for i in range(len(flat))]
        return processed, replacements


class Qwen2_5_VLImageTextProcessor(_BatchedQwenImages, Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without the video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs: Any) -> None:
        # The parent passes video_processor=None positionally; ProcessorMixin zips it away (2 attributes here).
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen3VLImageTextProcessor(_BatchedQwenImages, Qwen3VLProcessor):
    """Qwen3-VL's processor without the video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class SmolVLMImageTextProcessor(SmolVLMProcessor):
    """SmolVLM's processor without the video processor (and without the `num2words` it needs for video prompts)."""

    def __init__(self, image_processor, tokenizer, image_seq_len: int = 169, chat_template=None, **kwargs: Any):
        # Same attributes as SmolVLMProcessor.__init__, which we skip: it insists on num2words.
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        self.image_token = getattr(tokenizer, "image_token", "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.image_seq_len = image_seq_len
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, conversation, chat_template=None, **kwargs: Any):
        # The parent reads video_processor.num_frames / fps; images-only conversations need neither.
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


# Minimal chat templates in each family's own format: used for tiny processors and for checkpoints that ship
# none (PaliGemma's hub processors have no chat template). Jinja string literals keep the newlines explicit.
QWEN2_5_VL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif content['type'] == 'text' -%}{{- content['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Qwen3-VL: same turn format, but no default system prompt.
QWEN3_VL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif content['type'] == 'text' -%}{{- content['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# PaliGemma is a prefix-LM without turns: `<image>`s then the prefix text. The processor itself inserts `<bos>`
# after the last `<image>` and the `\n` that ends the prefix.
PALIGEMMA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif content['type'] == 'text' -%}{{- content['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
)


def _idefics_template(bos: str) -> str:
    """Idefics3 (`<|begin_of_text|>`) and SmolVLM (`<|im_start|>`) share the `User:<image>text<end_of_utterance>`
    format; the images are expanded by the processor."""
    return (
        bos + "{% for message in messages %}{{ message['role'] | capitalize }}"
        "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
        "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
        "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
        "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )


IDEFICS3_TEMPLATE = _idefics_template("<|begin_of_text|>")
SMOLVLM_TEMPLATE = _idefics_template("<|im_start|>")


def load_processor(source: str | Path, processor_class: type[ProcessorMixin], **kwargs: Any) -> ProcessorMixin:
    """Load a processor from a local directory or hub id with the family's (image-only) class.

    kwargs reach the sub-processors' `from_pretrained` (e.g. Qwen's `max_pixels`, SmolVLM's `do_image_splitting`).
    """
    return processor_class.from_pretrained(str(source), **kwargs)
