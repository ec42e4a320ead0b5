"""Token filters: which action tokens may come next, so that decoding can only produce valid action sequences.

Szot et al. (2024) found restricting decoding to valid action sequences crucial. Each grammar is a small state
machine over an adapter's *local* token ids (0..vocab_size-1): `allowed(state)` is the filter applied to the logits
before every decoding step, `advance` consumes a token, `is_complete` says the sequence may stop (and must: a
complete state allows nothing). Every grammar here guarantees that each reachable incomplete state allows at least
one token and that every path completes within `max_length` tokens, so constrained decoding always ends in a
sequence the decoder accepts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence

import numpy as np


class InvalidActionSequence(ValueError):
    """A token sequence that is not a complete, valid action sequence; it must never reach a decoder."""


class TokenGrammar(ABC):
    vocab_size: int
    max_length: int

    @abstractmethod
    def start(self) -> Hashable: ...

    @abstractmethod
    def allowed(self, state: Hashable) -> np.ndarray:
        """bool [vocab_size]: the tokens that may follow in `state` (all False once complete)."""

    @abstractmethod
    def advance(self, state: Hashable, token: int) -> Hashable:
        """The state after `token`; raises InvalidActionSequence if `token` is not allowed in `state`."""

    @abstractmethod
    def is_complete(self, state: Hashable) -> bool: ...

    def accepts(self, tokens: Sequence[int]) -> bool:
        """True iff the filter lets `tokens` through, token by token, and the result is complete."""
        try:
            self.check(tokens)
        except InvalidActionSequence:
            return False
        return True

    def check(self, tokens: Sequence[int]) -> None:
        state = self.start()
        for i, token in enumerate(tokens):
            try:
                state = self.advance(state, int(token))
            except InvalidActionSequence as exc:
                raise InvalidActionSequence(f"token {i} ({int(token)}): {exc}") from None
        if not self.is_complete(state):
            raise InvalidActionSequence(f"sequence of {len(tokens)} tokens is incomplete")

    def _require(self, allowed: np.ndarray, token: int) -> None:
        if not 0 <= token < self.vocab_size or not allowed[token]:
            raise InvalidActionSequence(f"token {token} not allowed here")


class PositionalGrammar(TokenGrammar):
    """Fixed length; position p allows the tokens in `allowed_at[p]` (Uniform: any bin; RVQ: codebook p mod M)."""

    def __init__(self, allowed_at: Sequence[np.ndarray]) -> None:
        if not allowed_at or any(not a.any() for a in allowed_at):
            raise ValueError("every position must allow at least one token")
        self.vocab_size = int(allowed_at[0].shape[0])
        self.max_length = len(allowed_at)
        self._allowed = [np.asarray(a, bool) for a in allowed_at]
        self._none = np.zeros(self.vocab_size, bool)

    def start(self) -> int:
        return 0

    def allowed(self, state: Hashable) -> np.ndarray:
        return self._allowed[state] if state < self.max_length else self._none

    def advance(self, state: Hashable, token: int) -> int:
        self._require(self.allowed(state), token)
        return state + 1

    def is_complete(self, state: Hashable) -> bool:
        return state == self.max_length


class LengthBudgetGrammar(TokenGrammar):
    """`START body END` where body tokens cover `token_lengths[t]` values each and must cover exactly `total`.

    FAST: each BPE token stands for a run of quantized DCT coefficients; a chunk has exactly H*D of them, so the
    body may only use tokens that fit in what is left, and END is allowed exactly when nothing is left. Local ids:
    0 = START, 1 = END, 2 + t = body token t. Needs a length-1 token (the BPE alphabet) so no budget strands.
    """

    START, END, OFFSET = 0, 1, 2

    def __init__(self, token_lengths: np.ndarray, total: int) -> None:
        lengths = np.asarray(token_lengths, np.int64)
        if total < 1 or lengths.size == 0 or lengths.min() < 1 or not (lengths == 1).any():
            raise ValueError("need total >= 1, positive token lengths and at least one length-1 token")
        self.total = int(total)
        self.vocab_size = int(lengths.shape[0]) + self.OFFSET
        self.max_length = self.total + 2
        self._lengths = np.concatenate([np.zeros(self.OFFSET, np.int64), lengths])
        self._body = np.arange(self.vocab_size) >= self.OFFSET
        self._only = {t: np.arange(self.vocab_size) == t for t in (self.START, self.END)}
        self._none = np.zeros(self.vocab_size, bool)

    def start(self) -> tuple[str, int]:
        return ("start", 0)

    def allowed(self, state: Hashable) -> np.ndarray:
        phase, count = state
        if phase == "start":
            return self._only[self.START]
        if phase == "done":
            return self._none
        remaining = self.total - count
        if remaining == 0:
            return self._only[self.END]
        return self._body & (self._lengths <= remaining)

    def advance(self, state: Hashable, token: int) -> tuple[str, int]:
        self._require(self.allowed(state), token)
        phase, count = state
        if phase == "start":
            return ("body", 0)
        if token == self.END:
            return ("done", count)
        return ("body", count + int(self._lengths[token]))

    def is_complete(self, state: Hashable) -> bool:
        return state[0] == "done"


class TrieGrammar(TokenGrammar):
    """Exactly one of a prefix-free set of sequences (Lang/SemLang: each action's text tokens, then EOS)."""

    def __init__(self, sequences: Sequence[Sequence[int]], vocab_size: int) -> None:
        seqs = [tuple(int(t) for t in s) for s in sequences]
        if not seqs or any(len(s) == 0 for s in seqs) or len(set(seqs)) != len(seqs):
            raise ValueError("need distinct, non-empty sequences")
        for s in seqs:
            if any(other != s and other[: len(s)] == s for other in seqs):
                raise ValueError(f"sequence {list(s)} is a prefix of another: end every sequence with an end token")
        if any(not 0 <= t < vocab_size for s in seqs for t in s):
            raise ValueError("sequence token outside the vocabulary")
        self.vocab_size = vocab_size
        self.max_length = max(len(s) for s in seqs)
        self.sequences = seqs
        self._children: list[dict[int, int]] = [{}]
        self._terminal: dict[int, int] = {}  # node -> index of the sequence it completes
        for index, seq in enumerate(seqs):
            node = 0
            for token in seq:
                if token not in self._children[node]:
                    self._children.append({})
                    self._children[node][token] = len(self._children) - 1
                node = self._children[node][token]
            self._terminal[node] = index
        self._masks = []
        for children in self._children:
            mask = np.zeros(vocab_size, bool)
            mask[list(children)] = True
            self._masks.append(mask)

    def start(self) -> int:
        return 0

    def allowed(self, state: Hashable) -> np.ndarray:
        return self._masks[state]

    def advance(self, state: Hashable, token: int) -> int:
        self._require(self.allowed(state), token)
        return self._children[state][token]

    def is_complete(self, state: Hashable) -> bool:
        return state in self._terminal

    def index_of(self, tokens: Sequence[int]) -> int:
        """Which sequence `tokens` is (raises InvalidActionSequence if none)."""
        state = self.start()
        for token in tokens:
            state = self.advance(state, int(token))
        if state not in self._terminal:
            raise InvalidActionSequence("incomplete action sequence")
        return self._terminal[state]
