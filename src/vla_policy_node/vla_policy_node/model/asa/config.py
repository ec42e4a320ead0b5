"""Configuration of an action-space adapter head, as stored under "head" in a checkpoint's vla_config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

CONTINUOUS = ("pred", "uniform", "vq", "rvq", "fast")
DISCRETE = ("discrete_pred", "lang", "semlang")
ADAPTERS = CONTINUOUS + DISCRETE
TokenStrategy = Literal["new", "remap", "text"]


@dataclass(frozen=True)
class TokenIds:
    """Which backbone vocabulary ids an adapter's tokens use, and how they were obtained.

    new: tokens added to the tokenizer (`tokens` are their strings) with the embedding matrix grown to fit;
    remap: rarely used existing ids taken over (RT-2/OpenVLA style, the follow-up of Szot et al.);
    text: the model's own text tokens (Lang/SemLang), `sequences` spelling each action.
    `ids[i]` is the backbone id of the adapter's local token i.
    """

    strategy: TokenStrategy
    ids: tuple[int, ...]
    tokens: tuple[str, ...] = ()
    sequences: tuple[tuple[int, ...], ...] = ()  # text: local-id sequence of each action (EOS included)

    def __post_init__(self) -> None:
        if self.strategy not in ("new", "remap", "text"):
            raise ValueError(f"token strategy must be new, remap or text, got {self.strategy!r}")
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "sequences", tuple(tuple(int(t) for t in s) for s in self.sequences))
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("token ids must be distinct")
        if self.strategy == "new" and len(self.tokens) != len(self.ids):
            raise ValueError("strategy 'new' records one token string per id")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenIds:
        return cls(**data)


@dataclass(frozen=True)
class ASAHeadConfig:
    """An action-space adapter as the VLA's action head.

    adapter: pred | uniform | vq | rvq | fast (continuous) or discrete_pred | lang | semlang (discrete).
    horizon / action_dim: the chunk the head predicts (discrete: 1 x 1, the action index).
    tokenizer: the fitted action tokenizer's config (token adapters), tensors live in model.safetensors.
    token_ids: the backbone ids of the adapter's tokens (token adapters and Lang/SemLang).
    actions / phrases: discrete action names and the text each is written as (Lang: number strings).
    use_state: a per-embodiment MLP turns the normalized state into one embedding fed after the prompt.
    greedy / temperature / top_k: default decoding of token adapters.
    """

    type: ClassVar[str] = "asa"  # stored under this "type" in vla_config.json; `adapter` names the head
    guided_by_prefix: ClassVar[bool] = False  # chunks come in one pass or token by token: nothing to steer
    provides_context: ClassVar[bool] = False

    backbone_dim: int
    adapter: str
    horizon: int = 16
    action_dim: int = 7
    max_state_dim: int = 64
    max_embodiments: int = 32
    use_state: bool = True
    hidden: int = 256
    tokenizer: dict[str, Any] | None = None
    token_ids: TokenIds | None = None
    actions: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    greedy: bool = True
    temperature: float = 1.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {self.adapter!r}; known: {list(ADAPTERS)}")
        for key in ("backbone_dim", "horizon", "action_dim", "max_state_dim", "max_embodiments", "hidden"):
            if getattr(self, key) <= 0:
                raise ValueError(f"ASAHeadConfig.{key} must be positive, got {getattr(self, key)}")
        if isinstance(self.token_ids, dict):
            object.__setattr__(self, "token_ids", TokenIds.from_dict(self.token_ids))
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "phrases", tuple(self.phrases))
        if self.discrete:
            if (self.horizon, self.action_dim) != (1, 1):
                raise ValueError("discrete adapters predict one action index: horizon = action_dim = 1")
            if len(self.actions) < 2:
                raise ValueError("discrete adapters need an action vocabulary of >= 2 names (ASAHeadConfig.actions)")
            if self.adapter != "discrete_pred" and len(self.phrases) != len(self.actions):
                raise ValueError(f"{self.adapter} needs one phrase per action")
        if self.adapter in ("uniform", "vq", "rvq", "fast") and self.tokenizer is None:
            raise ValueError(f"adapter {self.adapter!r} needs a fitted action tokenizer config")

    @property
    def head_name(self) -> str:
        return self.adapter

    @property
    def discrete(self) -> bool:
        return self.adapter in DISCRETE

    @property
    def max_action_dim(self) -> int:
        return self.action_dim

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["token_ids"] = None if self.token_ids is None else self.token_ids.to_dict()
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ASAHeadConfig:
        data = {k: v for k, v in data.items() if k != "type"}
        return cls(**data)
