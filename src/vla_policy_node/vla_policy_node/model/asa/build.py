"""Building a VLA with an action-space adapter head: backbone, token ids, head config, model.

Token ids (`token_strategy`): "new" adds the adapter's tokens to the tokenizer and grows the embedding matrix;
"remap" takes over the backbone's rarest existing ids. Lang/SemLang always use the model's own text tokens.
Whatever was chosen is recorded in the head config (`token_ids`) and checked against the tokenizer on load.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.asa.config import DISCRETE, ASAHeadConfig, TokenIds, TokenStrategy
from vla_policy_node.model.asa.lang import TextActionAdapter, text_token_ids
from vla_policy_node.model.asa.tokenized import TokenizedAdapter
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.asa.tokenizers.registry import tokenizer_to_dict
from vla_policy_node.model.backbone import Backbone, BackboneConfig
from vla_policy_node.model.embodiment_slot import EmbodimentSlot, make_slots
from vla_policy_node.model.heads import registered_heads
from vla_policy_node.model.vla_model import VLAConfig, VLAModel
from vla_policy_node.model.vocabulary import add_backbone_tokens, rare_token_ids
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet

ACTION_NAME = "action"  # the one "dimension" of a discrete action: its index in the vocabulary


def discrete_slot(tag: str, camera_names: Sequence[str], dt: float = 1.0) -> EmbodimentSlot:
    """An agent with discrete actions (e.g. BabyAI): cameras only, no state, one action index per step."""
    return EmbodimentSlot(tag=tag, index=0, state_names=(), action_names=(ACTION_NAME,),
                          camera_names=tuple(camera_names), dt=dt)


def discrete_normalization(tag: str) -> NormalizationSet:
    """Identity stats: discrete action indices must reach the adapter unchanged."""
    return NormalizationSet({tag: EmbodimentNormalization.identity(0, 1)})


def allocate_token_ids(backbone: Backbone, names: Sequence[str], strategy: TokenStrategy) -> TokenIds:
    if strategy == "new":
        return TokenIds(strategy="new", ids=tuple(add_backbone_tokens(backbone, names)), tokens=tuple(names))
    if strategy == "remap":
        return TokenIds(strategy="remap", ids=tuple(rare_token_ids(backbone, len(names))))
    raise ValueError(f"token strategy for learned tokens must be 'new' or 'remap', got {strategy!r}")


def build_asa_vla(
    backbone_config: BackboneConfig,
    adapter: str,
    *,
    embodiments: Sequence[Embodiment] = (),
    slots: Sequence[EmbodimentSlot] = (),
    tokenizer: ActionTokenizer | None = None,
    token_strategy: TokenStrategy = "new",
    actions: Sequence[str] = (),
    phrases: Sequence[str] | None = None,
    horizon: int | None = None,
    lang_seed: int = 0,
    processor: ProcessorMixin | None = None,
    **head_overrides: Any,
) -> VLAModel:
    """A fresh VLAModel whose head is `adapter` (randomly initialized head, fitted tokenizer copied in).

    Continuous adapters: `embodiments` (or `slots`) sharing one action dimensionality; token adapters also need the
    fitted `tokenizer` (its horizon is the chunk length), Pred needs `horizon`. Discrete adapters: `slots` (see
    `discrete_slot`), the action names `actions`, and for SemLang their `phrases` (default: the names); Lang writes
    them as number strings. `processor`: required for a config-only backbone (`Backbone.build`).
    """
    adapters = {name: e.head_cls for name, e in registered_heads().items() if e.config_cls is ASAHeadConfig}
    if adapter not in adapters:
        raise ValueError(f"unknown adapter {adapter!r}; known: {sorted(adapters)}")
    slots = tuple(slots) or make_slots(list(embodiments))
    if not slots:
        raise ValueError("need at least one embodiment (or slot)")
    backbone = Backbone.build(replace(backbone_config, padding_side="left"), processor)
    cls = adapters[adapter]
    head: dict[str, Any] = {"use_state": any(s.state_dim for s in slots), **head_overrides}
    token_ids = None
    if adapter in DISCRETE:
        head.update(horizon=1, action_dim=1, actions=tuple(actions))
        if issubclass(cls, TextActionAdapter):
            head["phrases"] = cls.phrases_for(actions, phrases, lang_seed)
            token_ids = text_token_ids(backbone, head["phrases"])
    else:
        dims = {s.action_dim for s in slots}
        if len(dims) != 1:
            raise ValueError(f"one continuous adapter serves one action dimensionality; slots have {sorted(dims)}")
        head["action_dim"] = dims.pop()
        if issubclass(cls, TokenizedAdapter):
            if tokenizer is None or not tokenizer.fitted:
                raise ValueError(f"adapter {adapter!r} needs a fitted action tokenizer")
            head.update(horizon=tokenizer.horizon, tokenizer=tokenizer_to_dict(tokenizer))
            token_ids = allocate_token_ids(backbone, cls.token_names(tokenizer), token_strategy)
        else:
            head["horizon"] = horizon or head.get("horizon", 16)
    head.setdefault("max_state_dim", max(1, *(s.state_dim for s in slots)))
    head.setdefault("max_embodiments", max(s.index for s in slots) + 1)
    config = ASAHeadConfig(backbone_dim=backbone.hidden_size, adapter=adapter, token_ids=token_ids, **head)
    module = cls(config, copy.deepcopy(tokenizer)) if issubclass(cls, TokenizedAdapter) else cls(config)
    vla_config = VLAConfig(backbone=backbone.config, head=config, embodiments=slots)
    return VLAModel(vla_config, backbone, module)
