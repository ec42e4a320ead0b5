"""The action-space adapter (ASA) interface of Szot et al. (2024): head, embedding, decoder, owned tokens, filter.

Every adapter reads the hidden state of the cut backbone. The prompt (images + instruction) is prefilled once into
the KV cache; with `use_state` the normalized proprioceptive state follows as one embedding (a per-embodiment MLP,
like the flow head's state token); the hidden state at that last conditioning position is what the adapter's
head reads first.

- Pred adapters (continuous regression, discrete classification): one head application, no tokens.
- Token adapters: the head gives logits over the adapter's own tokens; the chosen token's embedding (backbone
  embedding row of its id + the adapter's learned offset) is fed back through the KV cache, and so on until the
  token filter says the sequence is complete; the decoder turns the sequence into actions. Training is teacher
  forcing over the same path (one cached pass over [condition, t_1 .. t_{L-1}]), so training and inference see
  identical positions and masks.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla_policy_node.model.action_head import ActionHead, HeadLoss, Prediction
from vla_policy_node.model.asa.config import ASAHeadConfig
from vla_policy_node.model.asa.decoding import Sampling, constrained_generate
from vla_policy_node.model.asa.grammar import TokenGrammar
from vla_policy_node.model.backbone import Backbone
from vla_policy_node.model.layers import CategorySpecificMLP
from vla_policy_node.model.token_decoder import DecodeState, decode_step, embed_tokens, prefill

IGNORE = -100
__all__ = ["ActionSpaceAdapter", "Prediction", "TokenAdapter", "action_indices", "normalized_chunks"]


class ActionSpaceAdapter(ActionHead):
    """An action-space adapter as the VLA's action head (registered under its `name`, with `ASAHeadConfig`)."""

    name: ClassVar[str]

    def __init__(self, config: ASAHeadConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.state_encoder = (CategorySpecificMLP(c.max_embodiments, c.max_state_dim, c.hidden, c.backbone_dim)
                              if c.use_state else None)
        self._embedding_rms: float | None = None

    # --- interface ------------------------------------------------------------------------------------------
    @property
    def owned_token_ids(self) -> tuple[int, ...]:
        """Backbone vocabulary ids this adapter emits (empty for Pred adapters)."""
        return () if self.config.token_ids is None else self.config.token_ids.ids

    @abstractmethod
    def head(self, hidden: torch.Tensor, backbone: Backbone) -> torch.Tensor:
        """Hidden states [..., H] -> logits over the adapter's tokens / action classes, or action values."""

    def grammar(self) -> TokenGrammar | None:
        """The token filter (None for adapters without tokens)."""
        return None

    @abstractmethod
    def loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> torch.Tensor: ...

    def compute_loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> HeadLoss:
        return HeadLoss(self.loss(backbone, batch))

    # --- checkpoint hooks -----------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ASAHeadConfig, directory: Path | None = None) -> ActionSpaceAdapter:
        return cls(config)

    def check_backbone(self, backbone: Backbone) -> None:
        """Raise ValueError if the recorded token ids do not fit this backbone's vocabulary."""
        record = self.config.token_ids
        if record is None:
            return
        if max(record.ids, default=-1) >= backbone.vocab_size:
            raise ValueError(f"head.token_ids: id {max(record.ids)} outside the backbone vocabulary "
                             f"({backbone.vocab_size})")
        if record.strategy == "new":
            found = backbone.processor.tokenizer.convert_tokens_to_ids(list(record.tokens))
            if list(found) != list(record.ids):
                raise ValueError("head.token_ids: the tokenizer maps the adapter's added tokens to other ids "
                                 f"(e.g. {record.tokens[0]!r} -> {found[0]}, recorded {record.ids[0]})")

    # --- shared pieces --------------------------------------------------------------------------------------
    def sampling(self) -> Sampling:
        c = self.config
        return Sampling(greedy=c.greedy, temperature=c.temperature, top_k=c.top_k)

    def condition(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                  category: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        """Prefill the prompt, then feed the state token: -> hidden state [B, H] the head reads first."""
        hidden, decode_state = prefill(backbone, inputs)
        if self.state_encoder is not None:
            dtype = next(self.state_encoder.parameters()).dtype
            token = self.state_encoder(state.to(dtype), category)[:, None, :]
            # On the scale of a word embedding: a much larger input would drown what the prompt contributes.
            token = F.rms_norm(token, (token.shape[-1],)) * self.embedding_rms(backbone)
            hidden = decode_step(backbone, decode_state, token)[:, 0]
        return hidden, decode_state

    def embedding_rms(self, backbone: Backbone) -> float:
        """RMS of the backbone's input embeddings as fed to the decoder (Gemma's embedding module scales its rows),
        over up to 4096 ids; computed once (the embeddings are frozen or change slowly)."""
        if self._embedding_rms is None:
            with torch.no_grad():
                ids = torch.arange(min(backbone.vocab_size, 4096))
                self._embedding_rms = float(embed_tokens(backbone, ids).float().pow(2).mean().sqrt())
        return self._embedding_rms

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class TokenAdapter(ActionSpaceAdapter):
    """Adapters whose actions are token sequences: learned head + embedding over `vocab_size` local tokens."""

    learned_embedding: ClassVar[bool] = True  # False: the tokens are the LM's own text tokens, used as they are
    tied_logits: ClassVar[bool] = False  # True: the subclass computes logits from the embedding rows itself

    def __init__(self, config: ASAHeadConfig, vocab_size: int) -> None:
        super().__init__(config)
        if config.token_ids is None or len(config.token_ids.ids) != vocab_size:
            raise ValueError(f"{self.name}: needs token_ids for its {vocab_size} tokens, got "
                             f"{None if config.token_ids is None else len(config.token_ids.ids)}")
        self.vocab_size = vocab_size
        h = config.backbone_dim
        self.norm = nn.LayerNorm(h)  # stands in for the final norm the backbone cut removed
        self.logits = None if self.tied_logits else nn.Linear(h, vocab_size)
        # Embedding of local token i = backbone embedding row of ids[i] + offset[i] (trainable even when the
        # backbone is frozen; zero at start, so a remapped id starts as its old text embedding).
        self.embedding_offset = nn.Parameter(torch.zeros(vocab_size, h)) if self.learned_embedding else None
        self._ids_cache: dict[torch.device, torch.Tensor] = {}

    def backbone_ids(self, device: torch.device) -> torch.Tensor:
        if device not in self._ids_cache:
            self._ids_cache[device] = torch.tensor(self.owned_token_ids, dtype=torch.long, device=device)
        return self._ids_cache[device]

    def head(self, hidden: torch.Tensor, backbone: Backbone) -> torch.Tensor:
        return self.logits(self.norm(hidden.to(self._dtype())))

    def embed(self, backbone: Backbone, tokens: torch.Tensor) -> torch.Tensor:
        """Local tokens [B, T] -> backbone input embeddings [B, T, H]."""
        device = backbone.input_embeddings.weight.device
        tokens = tokens.to(device)
        out = embed_tokens(backbone, self.backbone_ids(device)[tokens])
        if self.embedding_offset is not None:
            out = out + self.embedding_offset[tokens].to(out.dtype)
        return out

    @abstractmethod
    def targets(self, batch: Mapping[str, Any]) -> list[list[int]]:
        """The token sequence (local ids, as the grammar accepts it) of every sample's actions."""

    @abstractmethod
    def decode(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """Valid token sequences -> actions [B, H, A] (normalized; discrete: indices)."""

    @abstractmethod
    def grammar(self) -> TokenGrammar:
        """Token adapters always have a filter."""

    def loss(self, backbone: Backbone, batch: Mapping[str, Any]) -> torch.Tensor:
        sequences = self.targets(batch)
        hidden, state = self.condition(backbone, batch["inputs"], batch["state"], batch["category"])
        length = max(len(s) for s in sequences)
        b = len(sequences)
        tokens = torch.zeros(b, length, dtype=torch.long)
        labels = torch.full((b, length), IGNORE, dtype=torch.long)
        for i, seq in enumerate(sequences):
            tokens[i, : len(seq)] = torch.tensor(seq)
            labels[i, : len(seq)] = torch.tensor(seq)
        predictors = hidden[:, None]
        if length > 1:  # teacher forcing: token k is predicted from the hidden state after token k-1
            fed = decode_step(backbone, state, self.embed(backbone, tokens[:, :-1]))
            predictors = torch.cat([predictors, fed], dim=1)
        logits = self.head(predictors, backbone).float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.to(logits.device).reshape(-1),
                               ignore_index=IGNORE)

    def predict(self, backbone: Backbone, inputs: dict[str, torch.Tensor], state: torch.Tensor,
                category: torch.Tensor, *, generator: torch.Generator | None = None, sampling: Sampling | None = None,
                num_steps: int | None = None, prefix: torch.Tensor | None = None,
                prefix_weights: torch.Tensor | None = None, on_prefill: Callable[[], None] | None = None,
                on_step: Callable[[int], None] | None = None,
                sample_fn: Callable[..., torch.Tensor] | None = None) -> Prediction:
        hidden, decode_state = self.condition(backbone, inputs, state, category)
        if on_prefill is not None:
            on_prefill()

        def step(tokens: torch.Tensor) -> torch.Tensor:
            fed = decode_step(backbone, decode_state, self.embed(backbone, tokens[:, None]))
            return self.head(fed[:, 0], backbone)

        sequences = constrained_generate(self.head(hidden, backbone), step, self.grammar(),
                                         sampling or self.sampling(), generator, on_step)
        return Prediction(actions=self.decode(sequences), tokens=sequences)


def normalized_chunks(batch: Mapping[str, Any], horizon: int, action_dim: int) -> np.ndarray:
    """The batch's normalized action chunks [B, H, D] as float64 numpy (what tokenizers were fitted on)."""
    actions = batch["actions"]
    if tuple(actions.shape[1:]) != (horizon, action_dim):
        raise ValueError(f"actions must be [B, {horizon}, {action_dim}] for this adapter, got {tuple(actions.shape)}")
    return actions.detach().double().cpu().numpy()


def action_indices(batch: Mapping[str, Any], num_actions: int) -> torch.Tensor:
    """Discrete targets: the batch's actions [B, 1, 1] hold action indices (identity normalization)."""
    values = batch["actions"].reshape(len(batch["actions"]), -1)[:, 0]
    index = values.round().long()
    if not torch.allclose(values.double(), index.double(), atol=1e-4) or index.min() < 0 or index.max() >= num_actions:
        raise ValueError(f"discrete actions must be integer indices in [0, {num_actions}); were they normalized? "
                         "(use discrete_normalization(tag) for discrete policies)")
    return index
