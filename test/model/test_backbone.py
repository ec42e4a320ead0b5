"""The VLM backbone on tiny random models of every family: the cut, padding, processors and checkpoint round trips."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import transformers

from vla_policy_node.model.backbone import Backbone, BackboneConfig, LoraSpec, truncate_config
from vla_policy_node.model.families import FAMILIES, get_family
from vla_policy_node.model.processors import load_processor
from vla_policy_node.model.tiny import build_tiny_backbone, build_tiny_processor, tiny_backbone_config
from vla_policy_node.spec.types import ObservationError

# paligemma2 = PaliGemma with a Gemma 2 decoder (sliding/full layer_types, eager attention).
VARIANTS = ["qwen2_5_vl", "qwen3_vl", "paligemma", "paligemma2", "idefics3", "smolvlm"]
INSTRUCTIONS = ["pick up the red block and put it in the blue bowl", "open"]
NUM_LAYERS, CUT = 4, 2
ATOL = 1e-5


def camera_images(batch: int = 2, cameras: int = 2, seed: int = 0) -> list[list[np.ndarray]]:
    """Non-square frames of a size no tiny model uses natively, so the processors really resize."""
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(cameras)] for _ in range(batch)]


def full_model(cfg: BackboneConfig) -> torch.nn.Module:
    """The untruncated transformers base model of a tiny config, random init."""
    spec = get_family(cfg.family)
    torch.manual_seed(0)
    config = spec.config_cls().from_dict(json.loads(json.dumps(cfg.model_config)))
    return spec.model_cls()._from_config(config).eval()


class Case:
    """One family: the full model, the backbone cut at CUT with the full model's weights, and a batch."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        cfg = tiny_backbone_config(variant, select_layer=CUT, num_layers=NUM_LAYERS)
        self.full = full_model(cfg)
        self.backbone = build_tiny_backbone(cfg)
        own = self.backbone.model.state_dict()
        self.backbone.model.load_state_dict({k: v for k, v in self.full.state_dict().items() if k in own})
        self.inputs = self.backbone.prepare(camera_images(), INSTRUCTIONS)
        self.features, self.mask = self.backbone(self.inputs)


@pytest.fixture(scope="module", params=VARIANTS)
def case(request: pytest.FixtureRequest) -> Case:
    return Case(request.param)


# ---------------------------------------------------------------------- per family
def test_forward_gives_finite_right_padded_features(case: Case) -> None:
    feats, mask = case.features, case.mask
    assert feats.shape == (2, mask.shape[1], case.backbone.hidden_size) and case.backbone.hidden_size == 64
    assert mask.dtype == torch.bool and torch.isfinite(feats).all()
    lengths = mask.sum(1)
    assert lengths[0] > lengths[1], "the longer instruction must give the longer sequence"
    for b, n in enumerate(lengths.tolist()):
        assert mask[b, :n].all() and not mask[b, n:].any(), "right padding: real tokens first"
        assert (feats[b, n:] == 0).all() and feats[b, :n].abs().sum() > 0
    assert torch.equal(mask, case.inputs["attention_mask"].bool())


def test_cut_removes_layers_head_and_norm(case: Case) -> None:
    spec, model = case.backbone.family, case.backbone.model
    assert case.backbone.num_layers == CUT == len(spec.layers(model))
    assert len(spec.layers(case.full)) == NUM_LAYERS
    text = model.config.get_text_config()
    assert text.num_hidden_layers == CUT
    if getattr(text, "layer_types", None) is not None:
        assert len(text.layer_types) == CUT
    assert isinstance(spec.text_model(model).norm, torch.nn.Identity)
    assert not any("lm_head" in name for name, _ in case.backbone.named_parameters())
    removed = sum(p.numel() for layer in spec.layers(case.full)[CUT:] for p in layer.parameters())
    removed += sum(p.numel() for p in spec.text_model(case.full).norm.parameters())
    n_full = sum(p.numel() for p in case.full.parameters())
    assert sum(p.numel() for p in case.backbone.parameters()) == n_full - removed < n_full


def test_features_equal_hidden_state_of_full_model(case: Case) -> None:
    with torch.no_grad():
        hidden = case.full(**case.inputs, output_hidden_states=True, use_cache=False).hidden_states
    assert len(hidden) == NUM_LAYERS + 1
    m = case.mask
    torch.testing.assert_close(case.features[m], hidden[CUT][m], atol=ATOL, rtol=0)
    assert not torch.allclose(case.features[m], hidden[CUT + 1][m], atol=1e-3), "a wrong cut must not pass"


def test_batched_features_equal_single_sample_features(case: Case) -> None:
    images = camera_images()
    for b in range(2):
        alone, alone_mask = case.backbone(case.backbone.prepare(images[b:b + 1], INSTRUCTIONS[b:b + 1]))
        n = int(alone_mask.sum())
        assert n == int(case.mask[b].sum())
        torch.testing.assert_close(case.features[b, :n], alone[0, :n], atol=ATOL, rtol=0)


def test_processor_round_trip(case: Case, tmp_path) -> None:
    case.backbone.save_processor(tmp_path)
    assert (tmp_path / "chat_template.jinja").is_file()
    loaded = load_processor(tmp_path, case.backbone.family.processor_class)
    assert type(loaded) is type(case.backbone.processor)
    # prepare() reads only the processor: the same modules with the loaded processor must give the same inputs.
    again = Backbone(case.backbone.config, case.backbone.family, case.backbone.model, loaded)
    again = again.prepare(camera_images(), INSTRUCTIONS)
    assert again.keys() == case.inputs.keys()
    for key, value in case.inputs.items():
        assert torch.equal(again[key], value), key


def test_checkpoint_round_trip(case: Case, tmp_path) -> None:
    case.backbone.save_processor(tmp_path)
    data = json.loads(json.dumps(case.backbone.checkpoint_config().to_dict()))
    cfg = BackboneConfig.from_dict(data)
    assert cfg.source is None and cfg.model_config["model_type"] == case.backbone.model.config.model_type
    assert cfg.model_config == case.backbone.model_config_dict()
    rebuilt = Backbone.from_checkpoint_dir(cfg, tmp_path)
    assert rebuilt.num_layers == CUT
    rebuilt.load_state_dict(case.backbone.state_dict(), strict=True)
    feats, mask = rebuilt(rebuilt.prepare(camera_images(), INSTRUCTIONS))
    assert torch.equal(mask, case.mask) and torch.equal(feats, case.features)


# ---------------------------------------------------------------------- construction and config
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tiny_config_token_ids_match_tokenizer(family: str) -> None:
    cfg = tiny_backbone_config(family)
    processor = build_tiny_processor(family)
    tok, mc = processor.tokenizer, cfg.model_config
    image_token = {"qwen2_5_vl": "<|image_pad|>", "qwen3_vl": "<|image_pad|>"}.get(family, "<image>")
    key = "image_token_index" if family == "paligemma" else "image_token_id"
    assert mc[key] == tok.convert_tokens_to_ids(image_token) != tok.unk_token_id
    assert mc["text_config"]["vocab_size"] == len(tok)
    if family.startswith("qwen"):
        assert mc["vision_start_token_id"] == tok.convert_tokens_to_ids("<|vision_start|>")


def test_pretrained_source_loads_only_kept_layers(tmp_path) -> None:
    """A saved *ForConditionalGeneration (the hub layout) loads into the cut base model, LM head skipped."""
    cfg = tiny_backbone_config("qwen2_5_vl", num_layers=NUM_LAYERS)
    spec = get_family("qwen2_5_vl")
    torch.manual_seed(0)
    config = spec.config_cls().from_dict(json.loads(json.dumps(cfg.model_config)))
    generator = transformers.Qwen2_5_VLForConditionalGeneration._from_config(config).eval()
    generator.save_pretrained(tmp_path)
    build_tiny_processor("qwen2_5_vl").save_pretrained(tmp_path)
    backbone = Backbone.build(BackboneConfig(family="auto", source=str(tmp_path), select_layer=CUT), device="cpu")
    assert backbone.family.name == "qwen2_5_vl" and backbone.num_layers == CUT
    inputs = backbone.prepare(camera_images(batch=1), ["pick"])
    with torch.no_grad():
        hidden = generator(**inputs, output_hidden_states=True, use_cache=False).hidden_states
    torch.testing.assert_close(backbone(inputs)[0], hidden[CUT], atol=ATOL, rtol=0)


def test_processor_without_chat_template_gets_the_family_format(tmp_path) -> None:
    """PaliGemma's hub processors ship no chat template: the family's is used and saved with the processor."""
    processor = build_tiny_processor("paligemma")
    processor.chat_template = None
    backbone = Backbone.build(tiny_backbone_config("paligemma"), processor=processor)
    ids = backbone.prepare(camera_images(batch=1), ["pick"])["input_ids"][0]
    text = backbone.processor.tokenizer.decode(ids)
    assert text.startswith("<image>") and text.endswith("<bos>pick\n") and text.count("<image>") == 2 * 16
    backbone.save_processor(tmp_path)
    assert (tmp_path / "chat_template.jinja").read_text() == get_family("paligemma").chat_template


def test_family_resolution() -> None:
    cfg = replace(tiny_backbone_config("idefics3"), family="auto")
    assert build_tiny_backbone(cfg).family.name == "idefics3"
    with pytest.raises(ValueError, match="does not match"):
        build_tiny_backbone(replace(cfg, family="qwen2_5_vl"))
    with pytest.raises(ValueError, match="unknown backbone family"):
        get_family("llava")
    assert get_family("paligemma2").name == "paligemma"


def test_select_layer_must_fit_the_model() -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.4"):
        build_tiny_backbone(tiny_backbone_config("qwen2_5_vl", select_layer=5))
    with pytest.raises(ValueError, match=">= 1"):
        tiny_backbone_config("qwen2_5_vl", select_layer=0)


def test_truncation_is_idempotent_and_shrinks_layer_types() -> None:
    cfg = tiny_backbone_config("paligemma2")
    config = get_family("paligemma").config_cls().from_dict(json.loads(json.dumps(cfg.model_config)))
    types = list(config.get_text_config().layer_types)
    assert len(types) == NUM_LAYERS and len(set(types)) == 2
    truncate_config(truncate_config(config, 3), 3)
    assert config.get_text_config().layer_types == types[:3]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="source"):
        BackboneConfig()
    with pytest.raises(ValueError, match="freeze=True"):
        BackboneConfig(source="x", lora=LoraSpec(), freeze=False)
    with pytest.raises(ValueError, match="dtype"):
        BackboneConfig(source="x", dtype="fp8")
    cfg = BackboneConfig(source="Qwen/Qwen2.5-VL-7B-Instruct", select_layer=18, lora=LoraSpec(rank=8))
    assert BackboneConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ---------------------------------------------------------------------- training modes
def test_frozen_backbone_has_no_trainable_params_and_stays_in_eval() -> None:
    backbone = build_tiny_backbone(tiny_backbone_config("qwen3_vl"))
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert backbone.training and not backbone.model.training
    feats, _ = backbone(backbone.prepare(camera_images(batch=1), ["pick"]))
    assert not feats.requires_grad


def test_unfrozen_backbone_trains_everything() -> None:
    backbone = build_tiny_backbone(tiny_backbone_config("smolvlm", freeze=False))
    assert all(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert backbone.model.training


@pytest.mark.parametrize("family", ["qwen2_5_vl", "idefics3"])
def test_lora_trains_only_language_model_adapters(family: str, tmp_path) -> None:
    torch.manual_seed(0)
    checkpointing = family == "idefics3"  # activation checkpointing must not change which params get gradients
    lora = LoraSpec(rank=4, alpha=8, dropout=0.0)
    cfg = tiny_backbone_config(family, lora=lora, gradient_checkpointing=checkpointing)
    backbone = build_tiny_backbone(cfg)
    assert backbone.model.is_activation_checkpointing == checkpointing
    text_attr = backbone.family.text_model_attr
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    lora_names = {n for n, _ in backbone.named_parameters() if "lora_" in n}
    assert trainable == lora_names and len(lora_names) == CUT * 4 * 2  # kept layers x q/k/v/o x (A, B)
    assert all(f"model.{text_attr}." in n for n in lora_names), "LoRA must stay out of the vision tower"
    backbone.train()
    feats, mask = backbone(backbone.prepare(camera_images(), INSTRUCTIONS))
    feats[mask].pow(2).mean().backward()
    for name, param in backbone.named_parameters():
        if name in trainable:
            assert param.grad is not None, name
            if "lora_B" in name:  # lora_A's gradient is zero until lora_B moves away from its zero init
                assert param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    # The adapters are part of the state dict and survive the checkpoint path.
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if "lora_B" in name:
                param.normal_()
    backbone.eval()
    backbone.save_processor(tmp_path)
    rebuilt = Backbone.from_checkpoint_dir(backbone.checkpoint_config(), tmp_path)
    rebuilt.load_state_dict(backbone.state_dict(), strict=True)
    inputs = backbone.prepare(camera_images(), INSTRUCTIONS)
    torch.testing.assert_close(rebuilt(inputs)[0], backbone(inputs)[0], atol=0, rtol=0)


# ---------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def two_camera_backbone() -> Backbone:
    return build_tiny_backbone(tiny_backbone_config("paligemma", num_cameras=2))


def test_bad_inputs_raise_named_errors(two_camera_backbone: Backbone) -> None:
    bb = two_camera_backbone
    good = camera_images(batch=1)[0]
    cases = [
        ([good[:1]], ["x"], "expects 2 camera images"),
        ([good, [good[0], good[1].astype(np.float32)]], ["x", "y"], "sample 1, camera 1: .*dtype float32"),
        ([[good[0], good[1][..., 0]]], ["x"], r"camera 1: expected HxWx3 RGB, got shape \(48, 64\)"),
        ([[good[0], good[1][..., :1]]], ["x"], "got shape"),
        ([good], ["x", "y"], "one image list per instruction"),
        ([good], "x", "list of strings"),
        ([good], [None], "instruction must be a str"),
        ([good, [*good, good[0]]], ["x", "y"], "expects 2"),
    ]
    for images, instructions, message in cases:
        with pytest.raises(ObservationError, match=message):
            bb.prepare(images, instructions)


def test_varying_camera_counts_rejected_without_num_cameras() -> None:
    bb = build_tiny_backbone(tiny_backbone_config("qwen2_5_vl"))
    good = camera_images(batch=1)[0]
    with pytest.raises(ObservationError, match="same number"):
        bb.prepare([good, good[:1]], ["x", "y"])
    assert bb.prepare([good[:1]], ["x"])["input_ids"].shape[0] == 1  # one camera is fine


def test_empty_instruction_is_allowed(two_camera_backbone: Backbone) -> None:
    feats, mask = two_camera_backbone(two_camera_backbone.prepare(camera_images(), ["", "pick"]))
    assert torch.isfinite(feats).all() and mask.sum(1)[0] < mask.sum(1)[1]


def test_long_instructions_are_cut_to_max_tokens() -> None:
    bb = build_tiny_backbone(tiny_backbone_config("qwen2_5_vl", max_instruction_tokens=3))
    tok = bb.processor.tokenizer
    long = "pick up the red block and put it in the blue bowl"
    short = tok.decode(tok(long, add_special_tokens=False)["input_ids"][:3])
    images = camera_images(batch=1)
    assert torch.equal(bb.prepare(images, [long])["input_ids"], bb.prepare(images, [short])["input_ids"])
    unbounded = Backbone(replace(bb.config, max_instruction_tokens=None), bb.family, bb.model, bb.processor)
    assert unbounded.prepare(images, [long])["input_ids"].shape[1] > bb.prepare(images, [long])["input_ids"].shape[1]


def test_camera_order_matters() -> None:
    """Cameras are positional: swapping them changes the features (the embodiment's order must be kept)."""
    bb = build_tiny_backbone(tiny_backbone_config("idefics3"))
    images = camera_images(batch=1)
    a, _ = bb(bb.prepare(images, ["pick"]))
    b, _ = bb(bb.prepare([images[0][::-1]], ["pick"]))
    assert not torch.allclose(a, b)
