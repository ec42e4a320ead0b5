"""Constrained autoregressive decoding of action tokens (greedy or sampled) with a token filter.

The loop is model-agnostic: `step(tokens)` feeds the tokens just chosen to the model (for the VLA: their
embeddings through the backbone's KV cache) and returns the next logits. Before every choice the logits of
tokens the grammar does not allow are set to -inf, so the sampled sequence is valid by construction; the loop
runs until every sequence is complete (a grammar bounds that by `max_length`) and checks it before returning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vla_policy_node.model.asa.grammar import InvalidActionSequence, TokenGrammar


@dataclass(frozen=True)
class Sampling:
    """greedy: argmax of the allowed logits; otherwise sample from softmax(logits / temperature) (top_k if set)."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0 or (self.top_k is not None and self.top_k < 1):
            raise ValueError(f"invalid Sampling: {self}")


def choose(logits: torch.Tensor, allowed: torch.Tensor, sampling: Sampling,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row among the allowed ones. logits [B, V], allowed [B, V] bool with >= 1 True per row."""
    masked = logits.float().masked_fill(~allowed, float("-inf"))
    if sampling.greedy:
        return masked.argmax(-1)
    scaled = masked / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < scaled.shape[-1]:
        kth = scaled.topk(sampling.top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def constrained_generate(
    first_logits: torch.Tensor,
    step: Callable[[torch.Tensor], torch.Tensor],
    grammar: TokenGrammar,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
    on_token: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Decode one valid sequence per row of `first_logits` [B, V] (the logits for the first token).

    Rows that finish early keep feeding their last token (their outputs are ignored) so the batch stays aligned.
    """
    b, v = first_logits.shape
    if v != grammar.vocab_size:
        raise ValueError(f"logits have {v} entries, the grammar's vocabulary has {grammar.vocab_size}")
    states = [grammar.start() for _ in range(b)]
    out: list[list[int]] = [[] for _ in range(b)]
    logits = first_logits
    for position in range(grammar.max_length):
        done = np.array([grammar.is_complete(s) for s in states])
        if done.all():
            break
        allowed = np.stack([grammar.allowed(s) for s in states])
        allowed[done, 0] = True  # finished rows: any placeholder, never recorded
        tokens = choose(logits, torch.from_numpy(allowed).to(logits.device), sampling, generator)
        for i, token in enumerate(tokens.tolist()):
            if not done[i]:
                out[i].append(token)
                states[i] = grammar.advance(states[i], token)
        if on_token is not None:
            on_token(position)
        if all(grammar.is_complete(s) for s in states):
            break
        logits = step(tokens)
    for seq in out:  # guaranteed by the grammars (property-tested); a broken grammar must fail loudly here
        grammar.check(seq)
    return out


__all__ = ["InvalidActionSequence", "Sampling", "choose", "constrained_generate"]
