"""The token filter (grammar) lets through exactly the valid action sequences, and constrained decoding with any
logits, greedy or sampled, only produces sequences that decode. Property tests against independent definitions
of validity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test.asa.trajectories import noisy_chunks
from vla_policy_node.model.asa.decoding import Sampling, constrained_generate
from vla_policy_node.model.asa.grammar import InvalidActionSequence, TokenGrammar, TrieGrammar
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer
from vla_policy_node.model.asa.tokenizers.fast import FastConfig, FastTokenizer
from vla_policy_node.model.asa.tokenizers.rvq import RVQConfig, RVQTokenizer
from vla_policy_node.model.asa.tokenizers.uniform import UniformConfig, UniformTokenizer

H, D = 3, 2
CHUNKS = noisy_chunks(300, H, D, sigma=0.3)


def _uniform() -> UniformTokenizer:
    tok = UniformTokenizer(UniformConfig(H, D, bins=5))
    tok.fit(CHUNKS)
    return tok


def _rvq() -> RVQTokenizer:
    tok = RVQTokenizer(RVQConfig(H, D, unit="action", codebook_size=3, depth=2, hidden=8, latent_dim=2))
    tok.fit(CHUNKS, steps=5)
    return tok


def _fast() -> FastTokenizer:
    tok = FastTokenizer(FastConfig(H, D, scale=2.0, vocab_size=40))
    tok.fit(CHUNKS)
    return tok


TOKENIZERS: dict[str, ActionTokenizer] = {"uniform": _uniform(), "rvq": _rvq(), "fast": _fast()}
PHRASES = [[7, 3, 9], [7, 3, 2, 9], [5, 9], [1, 9], [7, 9]]  # text tokens + EOS (9); shared prefixes on purpose
TRIE = TrieGrammar(PHRASES, vocab_size=10)


# --- independent definitions of "valid" --------------------------------------------------------------------------
def valid_uniform(seq: list[int]) -> bool:
    return len(seq) == H * D and all(0 <= t < 5 for t in seq)


def valid_rvq(seq: list[int]) -> bool:
    k, m = 3, 2
    return len(seq) == H * m and all(0 <= t < k * m and t // k == i % m for i, t in enumerate(seq))


def valid_fast(seq: list[int]) -> bool:
    tok = TOKENIZERS["fast"]
    vocab = tok.bpe.get_vocab_size()
    if len(seq) < 2 or seq[0] != 0 or seq[-1] != 1:
        return False
    body = seq[1:-1]
    if any(not 2 <= t < vocab + 2 for t in body):
        return False
    return sum(len(tok.bpe.id_to_token(t - 2)) for t in body) == H * D


def valid_trie(seq: list[int]) -> bool:
    return seq in PHRASES


CASES: dict[str, tuple[TokenGrammar, Callable[[list[int]], bool]]] = {
    "uniform": (TOKENIZERS["uniform"].grammar(), valid_uniform),
    "rvq": (TOKENIZERS["rvq"].grammar(), valid_rvq),
    "fast": (TOKENIZERS["fast"].grammar(), valid_fast),
    "trie": (TRIE, valid_trie),
}


def random_walk(grammar: TokenGrammar, rng: np.random.Generator) -> list[int]:
    state, out = grammar.start(), []
    while not grammar.is_complete(state):
        token = int(rng.choice(np.flatnonzero(grammar.allowed(state))))
        out.append(token)
        state = grammar.advance(state, token)
    return out


@st.composite
def candidate_sequences(draw: st.DrawFn, grammar: TokenGrammar) -> list[int]:
    """Arbitrary token lists, and valid ones with zero or one edit (the interesting boundary)."""
    v = grammar.vocab_size
    if draw(st.booleans()):
        return draw(st.lists(st.integers(-1, v), max_size=grammar.max_length + 2))
    seq = random_walk(grammar, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    edit = draw(st.sampled_from(["none", "replace", "insert", "delete", "truncate"]))
    i = draw(st.integers(0, len(seq) - 1))
    token = draw(st.integers(-1, v))
    if edit == "replace":
        seq[i] = token
    elif edit == "insert":
        seq.insert(i, token)
    elif edit == "delete":
        del seq[i]
    elif edit == "truncate":
        seq = seq[:i]
    return seq


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_filter_accepts_exactly_the_valid_sequences(name: str, data: st.DataObject) -> None:
    grammar, valid = CASES[name]
    seq = data.draw(candidate_sequences(grammar))
    assert grammar.accepts(seq) == valid(seq), seq


@pytest.mark.parametrize("name", ["uniform", "rvq", "fast"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decoders_reject_invalid_sequences(name: str, data: st.DataObject) -> None:
    tok = TOKENIZERS[name]
    grammar, valid = CASES[name]
    seq = data.draw(candidate_sequences(grammar))
    if valid(seq):
        assert tok.decode([seq]).actions.shape == (1, H, D)
    else:
        with pytest.raises(InvalidActionSequence):
            tok.decode([seq])
        assert not tok.decode([seq], strict=False).valid[0]


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), greedy=st.booleans(), temperature=st.floats(0.05, 5.0),
       top_k=st.one_of(st.none(), st.integers(1, 4)), batch=st.integers(1, 4))
def test_constrained_decoding_only_produces_valid_sequences(name: str, seed: int, greedy: bool, temperature: float,
                                                            top_k: int | None, batch: int) -> None:
    """Random logits at every step (a model that knows nothing) still yield valid, decodable sequences."""
    grammar, valid = CASES[name]
    gen = torch.Generator().manual_seed(seed)
    logits = lambda: torch.randn(batch, grammar.vocab_size, generator=gen) * 10  # noqa: E731
    out = constrained_generate(logits(), lambda _tokens: logits(), grammar,
                               Sampling(greedy=greedy, temperature=temperature, top_k=top_k), generator=gen)
    assert len(out) == batch and all(valid(seq) for seq in out)
    if name in TOKENIZERS:
        decoded = TOKENIZERS[name].decode(out)
        assert decoded.valid.all() and np.all(np.isfinite(decoded.actions))


def test_every_reachable_state_can_finish() -> None:
    """No dead ends: from every prefix of every valid sequence some token is allowed (checked exhaustively on the
    trie and on random walks of the others)."""
    rng = np.random.default_rng(0)
    for grammar, _ in CASES.values():
        for _ in range(200):
            state = grammar.start()
            for token in random_walk(grammar, rng):
                assert grammar.allowed(state).any()
                state = grammar.advance(state, token)
            assert not grammar.allowed(state).any()  # complete: nothing may follow


def test_trie_rejects_ambiguous_phrase_sets() -> None:
    with pytest.raises(ValueError, match="prefix"):
        TrieGrammar([[1, 2], [1, 2, 3]], vocab_size=4)
