"""Small reach data for the sim arm and adapters built on a tiny LoRA backbone (the paper fine-tunes with LoRA)."""

from __future__ import annotations

import numpy as np

from test.model.helpers import COLORS, observation
from vla_policy_node.model.asa.build import build_asa_vla, discrete_normalization, discrete_slot
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.backbone import LoraSpec
from vla_policy_node.model.tiny import tiny_backbone_config, tiny_processor
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.spec import Embodiment
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.train.action_tokenizer import TokenizerSpec
from vla_policy_node.train.data import Sample, fit_normalization

HORIZON = 2
TARGETS = {c: np.linspace(-1.0, 1.0, 7) * s for c, s in zip(COLORS, (0.8, -0.8, 0.4, -0.4), strict=True)}
DISCRETE_ACTIONS = ("left", "right", "forward", "pickup")
SEMANTIC_PHRASES = ("turn left", "turn right", "move forward", "pick up")
CONTINUOUS = ("pred", "uniform", "vq", "rvq", "fast")
DISCRETE = ("discrete_pred", "lang", "semlang")
SPECS = {
    "uniform": TokenizerSpec("uniform", bins=16),
    "vq": TokenizerSpec("vq", codebook_size=8, unit="chunk", latent_dim=4, hidden=32),
    "rvq": TokenizerSpec("rvq", codebook_size=8, depth=2, unit="chunk", latent_dim=4, hidden=32),
    "fast": TokenizerSpec("fast", vocab_size=64),
}


def reach_samples(emb: Embodiment) -> list[Sample]:
    """Per color (named in the instruction and shown in the images): a straight path to that color's target."""
    out = []
    for color, target in TARGETS.items():
        obs = observation(emb, color)
        steps = np.linspace(0.0, 1.0, HORIZON)[:, None]
        out.append(Sample(dict(obs.images), obs.state, obs.state + steps * (target - obs.state), obs.instruction,
                          emb.tag))
    return out


def discrete_samples(emb: Embodiment) -> list[Sample]:
    """The same four scenes, each labelled with one discrete action (index as the action value)."""
    return [Sample({"view": s.images["scene"]}, np.zeros(0), np.array([[float(i)]]), s.instruction, "grid")
            for i, s in enumerate(reach_samples(emb))]


def fitted_tokenizer(kind: str, emb: Embodiment, normalization: NormalizationSet) -> ActionTokenizer:
    chunks = np.stack([normalization[emb.tag].action.normalize(s.actions) for s in reach_samples(emb)])
    tok = SPECS[kind].build(HORIZON, emb.action_dim)
    tok.fit(np.repeat(chunks, 16, axis=0), steps=400, lr=3e-3, dead_code_window=50, seed=0)
    return tok


def build(adapter: str, emb: Embodiment, *, strategy: str = "new", lora: bool = True,
          family: str = "qwen2_5_vl") -> tuple[VLAModel, NormalizationSet, list[Sample]]:
    """A tiny policy with `adapter` as its head, with the normalization and data it is meant for."""
    overrides = {"lora": LoraSpec(rank=8, alpha=16, dropout=0.0)} if lora else {}
    backbone = tiny_backbone_config(family, **overrides)
    if adapter in DISCRETE:
        model = build_asa_vla(backbone, adapter, slots=[discrete_slot("grid", ["view"])], actions=DISCRETE_ACTIONS,
                              phrases=SEMANTIC_PHRASES if adapter == "semlang" else None, hidden=64,
                              processor=tiny_processor(backbone))
        return model, discrete_normalization("grid"), discrete_samples(emb)
    data = reach_samples(emb)
    norm = fit_normalization(data)
    tokenizer = fitted_tokenizer(adapter, emb, norm) if adapter in SPECS else None
    model = build_asa_vla(backbone, adapter, embodiments=[emb], tokenizer=tokenizer, token_strategy=strategy,
                          horizon=HORIZON, hidden=64, processor=tiny_processor(backbone))
    return model, norm, data


__all__ = ["CONTINUOUS", "DISCRETE", "DISCRETE_ACTIONS", "build", "discrete_normalization", "reach_samples"]
