"""Tiny, offline versions of each family's model config and *real* processor, for tests and demos.

Nothing here touches a model hub. The tokenizer is a small byte-level BPE trained in a few milliseconds on a
fixed text (so any instruction tokenizes, without unknown tokens) plus the family's special tokens; the image
processor is the family's own `*ImageProcessorPil` at a small size; the chat template is the family's format.
Model configs take their token ids and vocabulary size from that tokenizer, so the two always agree.

Only callers that want test-size models import this module (tests, the demo, `experiments/`, benchmarks, the
RoboAlign tests' tiny MLLM); the production path (backbone, checkpoint loading, the policy) never does: a backbone
built from a bare config gets its processor from here explicitly (`build_tiny_backbone`, `tiny_processor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Idefics3Processor, PaliGemmaProcessor, PreTrainedTokenizerFast
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model import processors as P
from vla_policy_node.model.backbone import Backbone
from vla_policy_node.model.backbone_config import BackboneConfig
from vla_policy_node.model.families import get_family, resolve_family

_CORPUS = (
    "pick up the red block and put it in the blue bowl",
    "open the top drawer and close the door",
    "push the green button then stack the cubes on the plate",
    "move the arm to the left of the cup",
    "You are a helpful assistant.",
    "system user assistant",
)
_ROW_COL = tuple(f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6))

# Tiny sizes shared by every family: decoder 64 wide (2 heads of 32, GQA with 1 KV head), vision tower 32 wide.
HIDDEN = 64
VISION_HIDDEN = 32


@dataclass(frozen=True)
class _Tokens:
    specials: tuple[str, ...]
    eos: str
    pad: str
    bos: str | None = None
    unk: str | None = None


_QWEN = _Tokens(
    ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
     "<|video_pad|>"),
    eos="<|im_end|>", pad="<|endoftext|>",
)
_TOKENS: dict[str, _Tokens] = {
    "qwen2_5_vl": _QWEN,
    "qwen3_vl": _QWEN,
    "paligemma": _Tokens(("<pad>", "<eos>", "<bos>", "<unk>", "<image>"), eos="<eos>", pad="<pad>", bos="<bos>",
                         unk="<unk>"),
    "idefics3": _Tokens(
        ("<|end_of_text|>", "<|begin_of_text|>", "<fake_token_around_image>", "<image>", "<global-img>",
         "<end_of_utterance>", *_ROW_COL),
        eos="<|end_of_text|>", pad="<|end_of_text|>", bos="<|begin_of_text|>",
    ),
    "smolvlm": _Tokens(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>", "<global-img>",
         "<end_of_utterance>", *_ROW_COL),
        eos="<end_of_utterance>", pad="<|endoftext|>", bos="<|im_start|>",
    ),
}

# Default square image side per family: a whole number of (merged) patches.
TINY_IMAGE_SIZE = {"qwen2_5_vl": 56, "qwen3_vl": 64, "paligemma": 56, "idefics3": 56, "smolvlm": 56}
_PATCH = {"qwen2_5_vl": 14, "qwen3_vl": 16, "paligemma": 14, "idefics3": 14, "smolvlm": 14}
_SCALE_FACTOR = 2  # Idefics3/SmolVLM pixel shuffle; Qwen spatial merge


def build_tiny_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE over a fixed text (~330 tokens) with the family's special tokens first."""
    tokens = _TOKENS[get_family(family).name]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=list(tokens.specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS, trainer)
    kwargs: dict[str, Any] = {"eos_token": tokens.eos, "pad_token": tokens.pad}
    if tokens.bos:
        kwargs["bos_token"] = tokens.bos
    if tokens.unk:
        kwargs["unk_token"] = tokens.unk
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def _check_image_size(family: str, image_size: int) -> None:
    multiple = _PATCH[family] * _SCALE_FACTOR
    if image_size <= 0 or image_size % multiple:
        raise ValueError(f"tiny {family} image_size must be a positive multiple of {multiple}, got {image_size}")


def build_tiny_processor(family: str, image_size: int | None = None) -> ProcessorMixin:
    """A real processor of the family's class, offline; every camera image becomes image_size x image_size."""
    name = get_family(family).name
    image_size = image_size or TINY_IMAGE_SIZE[name]
    _check_image_size(name, image_size)
    tokenizer = build_tiny_tokenizer(name)
    patch = _PATCH[name]
    if name in ("qwen2_5_vl", "qwen3_vl"):
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        pixels = image_size * image_size  # min == max pixels: a fixed token budget per camera
        extra = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3} if name == "qwen3_vl" else {}
        image_processor = Qwen2VLImageProcessorPil(
            size={"shortest_edge": pixels, "longest_edge": pixels}, patch_size=patch, merge_size=_SCALE_FACTOR,
            temporal_patch_size=2, **extra,
        )
        cls = P.Qwen2_5_VLImageTextProcessor if name == "qwen2_5_vl" else P.Qwen3VLImageTextProcessor
        template = P.QWEN2_5_VL_TEMPLATE if name == "qwen2_5_vl" else P.QWEN3_VL_TEMPLATE
        return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    if name == "paligemma":
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        image_processor = SiglipImageProcessorPil(
            size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        )
        image_processor.image_seq_length = (image_size // patch) ** 2
        return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                  chat_template=P.PALIGEMMA_TEMPLATE)
    # idefics3 / smolvlm: no image splitting, so each camera is one global image of image_seq_len tokens.
    seq_len = (image_size // patch) ** 2 // _SCALE_FACTOR**2
    edge = {"longest_edge": image_size}
    if name == "idefics3":
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

        image_processor = Idefics3ImageProcessorPil(size=edge, max_image_size=edge, do_image_splitting=False)
        return Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq_len,
                                 chat_template=P.IDEFICS3_TEMPLATE)
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    image_processor = SmolVLMImageProcessorPil(size=edge, max_image_size=edge, do_image_splitting=False)
    return P.SmolVLMImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq_len,
                                       chat_template=P.SMOLVLM_TEMPLATE)


def tiny_model_config(family: str, processor: ProcessorMixin, *, num_layers: int = 4, gemma2: bool = False,
                      ) -> dict[str, Any]:
    """A transformers config dict (~0.1-0.3M parameters) whose token ids and vocab match `processor`."""
    name = get_family(family).name
    tok = processor.tokenizer
    ids = tok.convert_tokens_to_ids
    vocab = len(tok)
    text: dict[str, Any] = {
        "vocab_size": vocab, "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "num_hidden_layers": num_layers,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": HIDDEN // 2, "max_position_embeddings": 1024,
        "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id,
    }
    vision: dict[str, Any] = {"hidden_size": VISION_HIDDEN, "intermediate_size": 2 * VISION_HIDDEN}
    patch = _PATCH[name]
    if name in ("qwen2_5_vl", "qwen3_vl"):
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}  # 2*sum == head_dim
        if name == "qwen3_vl":
            rope["mrope_interleaved"] = True
        text["rope_parameters"] = rope
        vision.update(depth=2, num_heads=2, out_hidden_size=HIDDEN, patch_size=patch, spatial_merge_size=2,
                      temporal_patch_size=2)
        if name == "qwen2_5_vl":
            vision.update(window_size=2 * patch * 2, fullatt_block_indexes=[1])
        else:
            # one learnt absolute position per patch of the configured image (Qwen3-VL interpolates otherwise)
            side = math.isqrt(processor.image_processor.size["shortest_edge"]) // patch
            vision.update(num_position_embeddings=side * side, deepstack_visual_indexes=[0])
        return {
            "model_type": name, "text_config": text, "vision_config": vision,
            "image_token_id": ids("<|image_pad|>"), "video_token_id": ids("<|video_pad|>"),
            "vision_start_token_id": ids("<|vision_start|>"), "vision_end_token_id": ids("<|vision_end|>"),
        }
    image_size = processor.image_processor.size["height" if name == "paligemma" else "longest_edge"]
    vision.update(num_hidden_layers=2, num_attention_heads=2, image_size=image_size, patch_size=patch)
    if name == "paligemma":
        text["model_type"] = "gemma2" if gemma2 else "gemma"
        if gemma2:
            text.update(sliding_window=16, query_pre_attn_scalar=HIDDEN // 2)
        vision.update(model_type="siglip_vision_model", vision_use_head=False)
        return {
            "model_type": "paligemma", "text_config": text, "vision_config": vision, "vocab_size": vocab,
            "image_token_index": processor.image_token_id, "projection_dim": HIDDEN, "hidden_size": HIDDEN,
        }
    text["model_type"] = "llama"
    return {
        "model_type": name, "text_config": text, "vision_config": vision, "scale_factor": _SCALE_FACTOR,
        "image_token_id": ids("<image>"), "pad_token_id": tok.pad_token_id,
    }


def tiny_backbone_config(family: str, *, select_layer: int = 2, num_layers: int = 4, image_size: int | None = None,
                         **overrides: Any) -> BackboneConfig:
    """BackboneConfig of a tiny random model; `build_tiny_backbone(cfg)` builds it with its tiny processor.

    `family` may also be 'paligemma2' (PaliGemma with a Gemma 2 decoder, sliding/full `layer_types`).
    """
    processor = build_tiny_processor(family, image_size)
    config = tiny_model_config(family, processor, num_layers=num_layers, gemma2=family == "paligemma2")
    if image_size is not None:
        overrides.setdefault("processor_kwargs", {"image_size": image_size})
    return BackboneConfig(family=get_family(family).name, model_config=config, select_layer=select_layer,
                          **overrides)


def tiny_processor(cfg: BackboneConfig) -> ProcessorMixin:
    """The tiny processor of a config-only backbone config (the one `tiny_backbone_config` was made with): the
    family's, at `processor_kwargs["image_size"]` or else the vision tower's image size."""
    kwargs = dict(cfg.processor_kwargs)
    vision_size = (cfg.model_config or {}).get("vision_config", {}).get("image_size")
    if "image_size" not in kwargs and isinstance(vision_size, int):
        kwargs["image_size"] = vision_size
    return build_tiny_processor(resolve_family(cfg.family, cfg.model_type()).name, **kwargs)


def build_tiny_backbone(cfg: BackboneConfig, device: Any = None) -> Backbone:
    """`Backbone.build` of a tiny config with its tiny processor."""
    return Backbone.build(cfg, tiny_processor(cfg), device=device)


# A tiny head sized for CPU tests and the demo: same architecture as the default, a few thousand times smaller.
TINY_HEAD: dict[str, Any] = dict(dim=32, layers=2, heads=4, adapter_layers=1, max_state_dim=16, max_action_dim=8,
                                 max_embodiments=4, num_future_tokens=4)


def build_tiny_vla(embodiments: list, family: str = "qwen2_5_vl", *, image_size: int | None = None,
                   backbone_overrides: dict[str, Any] | None = None, aux: Any = None, **head_overrides: Any):
    """A randomly initialized tiny VLAModel (backbone + flow head) for the given embodiments.

    The processor resizes camera frames to its own size (TINY_IMAGE_SIZE), whatever the cameras deliver.
    """
    from vla_policy_node.model.vla_model import VLAModel  # local: a backbone-only caller need not load the heads

    cfg = tiny_backbone_config(family, image_size=image_size, **(backbone_overrides or {}))
    return VLAModel.build(cfg, {**TINY_HEAD, **head_overrides}, embodiments, aux=aux, processor=tiny_processor(cfg))
