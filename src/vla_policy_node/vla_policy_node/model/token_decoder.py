"""The cut backbone as a KV-cached token decoder, for token action heads (model/asa).

The prompt (images + instruction) runs once (`prefill`) and is kept in the KV cache; each action token, or the
state embedding, is then one cached step (`decode_step`) fed as `inputs_embeds` (`embed_tokens` turns token ids
into the embeddings `input_ids` would feed). Position ids continue the prompt's: Qwen-VL's 3-axis positions from
the model's rope_deltas, a plain count elsewhere.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from vla_policy_node.model.backbone import Backbone


@dataclass
class DecodeState:
    """What continuing a batch of prompts needs: the KV cache, the attention mask over everything so far
    (prompt padding included) and each sample's next position id."""

    cache: Any
    attention_mask: torch.Tensor  # [B, T_so_far] long
    next_position: torch.Tensor  # [B] long


def embed_tokens(backbone: Backbone, ids: torch.Tensor) -> torch.Tensor:
    """Token ids -> the LM's input embeddings (what `input_ids` would feed), for `decode_step`."""
    embeddings = backbone.input_embeddings
    return embeddings(ids.to(embeddings.weight.device))


def prefill(backbone: Backbone, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, DecodeState]:
    """Run the prompt (images + text) once and keep the KV cache. Needs LEFT-padded inputs, so the last
    position is every sample's last real token. Returns its hidden state [B, H] and the decoding state."""
    model = backbone.model
    kwargs = backbone.model_kwargs(inputs)
    mask = kwargs["attention_mask"]
    if not bool(mask[:, -1].all()):
        raise ValueError("prefill needs left-padded inputs (BackboneConfig.padding_side='left')")
    needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in model.parameters())
    with nullcontext() if needs_grad else torch.no_grad():
        out = model(**kwargs, use_cache=True, return_dict=True)
    if out.past_key_values is None:
        raise RuntimeError("the model returned no KV cache (gradient checkpointing disables it while training)")
    if backbone.family.positions == "mrope":
        deltas = model.rope_deltas.reshape(-1).to(mask.device)
        next_position = mask.sum(-1) + deltas  # max position of the prompt + 1 (mrope_position_deltas)
    else:
        next_position = torch.full_like(mask[:, 0], mask.shape[1] + backbone.family.position_offset)
    state = DecodeState(cache=out.past_key_values, attention_mask=mask.long(), next_position=next_position.long())
    return out.last_hidden_state[:, -1], state


def decode_step(backbone: Backbone, state: DecodeState, embeds: torch.Tensor) -> torch.Tensor:
    """Append `embeds` [B, T, H] (action-token or state embeddings) after everything decoded so far, using and
    extending the KV cache in `state`. Returns their hidden states [B, T, H] at the cut layer.

    Runs with gradients whenever autograd is on: even with a frozen backbone the loss must reach the
    embeddings fed here (the action head's own embedding table and state token)."""
    b, t, _ = embeds.shape
    device = state.attention_mask.device
    steps = torch.arange(t, device=device)
    positions = state.next_position[:, None] + steps[None, :]
    if backbone.family.positions == "mrope":
        positions = positions[None].expand(3, b, t)
    mask = torch.cat([state.attention_mask, torch.ones(b, t, dtype=torch.long, device=device)], dim=1)
    param = next(backbone.model.parameters())
    out = backbone.model(inputs_embeds=embeds.to(param.dtype), attention_mask=mask, position_ids=positions,
                         past_key_values=state.cache, use_cache=True, return_dict=True)
    state.cache = out.past_key_values
    state.attention_mask = mask
    state.next_position = state.next_position + t
    return out.last_hidden_state
