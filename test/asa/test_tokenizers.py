"""Action tokenizers: round trips within bounds that follow from each method, on smooth and noisy chunks."""

from __future__ import annotations

import numpy as np
import pytest

from test.asa.trajectories import LATENT_PER_DIM, noisy_chunks, smooth_chunks
from vla_policy_node.model.asa.grammar import InvalidActionSequence
from vla_policy_node.model.asa.tokenizers.base import reconstruction_report
from vla_policy_node.model.asa.tokenizers.fast import FastConfig, FastTokenizer
from vla_policy_node.model.asa.tokenizers.rvq import RVQConfig, RVQTokenizer
from vla_policy_node.model.asa.tokenizers.storage import load_tokenizer, save_tokenizer
from vla_policy_node.model.asa.tokenizers.uniform import UniformConfig, UniformTokenizer
from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet

H, D = 8, 3
SIGMA = 0.05
DATA = {"smooth": smooth_chunks(2000, H, D), "noisy": noisy_chunks(2000, H, D, SIGMA)}


# --- Uniform ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["smooth", "noisy"])
def test_uniform_error_is_at_most_half_a_bin(kind: str) -> None:
    chunks = DATA[kind]
    tok = UniformTokenizer(UniformConfig(H, D, bins=64))
    tok.fit(chunks)
    tokens = tok.encode(chunks)
    assert all(len(t) == H * D for t in tokens)  # one token per dimension and step
    err = np.abs(tok.roundtrip(chunks) - chunks)
    half_bin = tok.bin_width / 2
    assert np.all(err <= half_bin + 1e-12)
    assert err.max() > 0.5 * half_bin.max()  # the bound is tight, not vacuous


def test_uniform_clips_values_outside_the_fitted_range() -> None:
    tok = UniformTokenizer(UniformConfig(H, D, bins=16))
    tok.fit(DATA["smooth"])
    outside = np.full((1, H, D), 5.0)
    decoded = tok.roundtrip(outside)
    np.testing.assert_allclose(decoded, np.broadcast_to(np.array(tok.config.high) - tok.bin_width / 2, (1, H, D)))


# --- FAST ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["smooth", "noisy"])
def test_fast_error_bound_from_orthonormal_dct(kind: str) -> None:
    """Rounding changes each coefficient by <= 1/(2 scale); the DCT is orthonormal, so per (chunk, dimension) the
    RMS error over time is <= 1/(2 scale) and the largest single error <= sqrt(H)/(2 scale)."""
    chunks = DATA[kind]
    tok = FastTokenizer(FastConfig(H, D, scale=10.0, vocab_size=512))
    tok.fit(chunks)
    err = tok.roundtrip(chunks) - chunks
    rms = np.sqrt(np.mean(err**2, axis=1))
    assert rms.max() <= 1 / (2 * 10.0) + 1e-12
    assert np.abs(err).max() <= np.sqrt(H) / (2 * 10.0) + 1e-12
    assert tok.clipped_fraction(chunks) == 0.0


def test_fast_compresses_smooth_chunks_more_than_noisy_ones() -> None:
    """Smooth chunks have few non-zero DCT coefficients, so BPE merges them into fewer tokens."""
    lengths = {}
    for kind, chunks in DATA.items():
        tok = FastTokenizer(FastConfig(H, D, vocab_size=512))
        tok.fit(chunks)
        lengths[kind] = np.mean([len(t) for t in tok.encode(chunks)])
    assert lengths["smooth"] < 0.75 * lengths["noisy"] < 0.75 * H * D


def test_fast_lenient_decode_pads_and_flags_short_sequences() -> None:
    tok = FastTokenizer(FastConfig(H, D, vocab_size=256))
    tok.fit(DATA["smooth"])
    full = tok.wrap(tok.encode(DATA["smooth"][:1])[0])
    one = int(np.flatnonzero(tok.token_lengths() == 1)[0])
    short = tok.wrap([one])  # START, a single coefficient, END: H*D - 1 coefficients missing
    with pytest.raises(InvalidActionSequence):
        tok.decode([short])
    out = tok.decode([short, full], strict=False)
    assert out.valid.tolist() == [False, True]
    assert out.actions.shape == (2, H, D) and np.all(np.isfinite(out.actions))


# --- RVQ ----------------------------------------------------------------------------------------------------------
RVQ_D, K = 2, 64
RVQ_DATA = {"smooth": smooth_chunks(2000, H, RVQ_D, seed=3), "noisy": noisy_chunks(2000, H, RVQ_D, SIGMA, seed=3)}


def fitted_rvq(chunks: np.ndarray) -> tuple[RVQTokenizer, dict]:
    tok = RVQTokenizer(RVQConfig(H, RVQ_D, unit="chunk", codebook_size=K, depth=2, latent_dim=8, hidden=64))
    report = tok.fit(chunks, steps=1200, batch_size=128, lr=2e-3, dead_code_window=100)
    return tok, report


@pytest.fixture(scope="module")
def rvq_results() -> dict[str, tuple[RVQTokenizer, dict]]:
    return {kind: fitted_rvq(chunks) for kind, chunks in RVQ_DATA.items()}


def rvq_bound(codes: int) -> float:
    """High-rate quantization of a p-dimensional uniform latent with `codes` cells: relative MSE ~ codes^(-2/p).
    A smooth chunk has p = 2 latent values per dimension; the greedy, learned RVQ gets a factor 4 of slack."""
    p = LATENT_PER_DIM * RVQ_D
    return 4.0 * codes ** (-2.0 / p)


@pytest.mark.slow
def test_rvq_reconstructs_smooth_chunks_within_the_quantization_bound(rvq_results) -> None:
    tok, report = rvq_results["smooth"]
    chunks = RVQ_DATA["smooth"]
    tokens = tok.encode(chunks)
    assert all(len(t) == 2 for t in tokens)  # one token per codebook (unit = chunk)
    assert all(t[0] < K <= t[1] for t in tokens)  # coarse codebook first, its own id range
    var = chunks.var()
    coarse = np.mean((tok.decode_depth(tokens, 1) - chunks) ** 2) / var
    fine = np.mean((tok.roundtrip(chunks) - chunks) ** 2) / var
    assert coarse <= rvq_bound(K)
    assert fine <= rvq_bound(K * K)  # one codebook alone cannot meet this: the second one must refine
    assert min(report["codebook_usage"]) > 0.5


@pytest.mark.slow  # trains the module's RVQ tokenizers (rvq_results)
def test_rvq_on_noisy_chunks_keeps_the_smooth_part(rvq_results) -> None:
    """White noise in H*D dimensions cannot be coded with K*K codes; the error may reach the noise energy but
    not more than that plus the smooth-chunk bound."""
    tok, _ = rvq_results["noisy"]
    chunks = RVQ_DATA["noisy"]
    mse = np.mean((tok.roundtrip(chunks) - chunks) ** 2)
    assert mse <= SIGMA**2 + rvq_bound(K * K) * RVQ_DATA["smooth"].var()


def test_rvq_restarts_dead_codes_and_reports_usage() -> None:
    """Eight distinct chunks and 32 codes: most codes die at first; restarts must be reported, usage measured, and
    with more codes than points every chunk gets its own code (error only from the decoder fit)."""
    chunks = np.repeat(DATA["smooth"][:8], 50, axis=0)
    tok = RVQTokenizer(RVQConfig(H, D, unit="chunk", codebook_size=32, depth=1, latent_dim=4, hidden=32))
    report = tok.fit(chunks, steps=600, lr=3e-3, dead_code_window=50)
    assert report["dead_codes_reinitialized"] > 0
    codes = {tuple(t) for t in tok.encode(chunks)}
    assert len(codes) == 8
    assert report["codebook_usage"][0] == pytest.approx(8 / 32)
    assert np.mean((tok.roundtrip(chunks) - chunks) ** 2) < 0.05 * chunks.var()


# --- shared -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: UniformTokenizer(UniformConfig(H, D, bins=32)),
    lambda: FastTokenizer(FastConfig(H, D, vocab_size=128)),
    lambda: RVQTokenizer(RVQConfig(H, D, codebook_size=16, depth=2, hidden=16)),
], ids=["uniform", "fast", "rvq"])
def test_save_and_load_give_the_same_tokens_and_actions(make, tmp_path) -> None:
    chunks = DATA["noisy"][:200]
    tok = make()
    tok.fit(chunks, steps=50)
    norm = NormalizationSet({"arm": EmbodimentNormalization.identity(2, D)})
    save_tokenizer(tok, tmp_path, normalization=norm)
    loaded, loaded_norm = load_tokenizer(tmp_path)
    assert loaded.encode(chunks) == tok.encode(chunks)
    np.testing.assert_array_equal(loaded.roundtrip(chunks), tok.roundtrip(chunks))
    assert loaded_norm.to_dict() == norm.to_dict()


def test_report_names_dimensions_and_counts_tokens() -> None:
    tok = UniformTokenizer(UniformConfig(H, D, bins=8))
    tok.fit(DATA["smooth"])
    report = reconstruction_report(tok, DATA["smooth"][:10], names=["x", "y", "z"])
    assert list(report["mse_per_dim"]) == ["x", "y", "z"]
    assert report["tokens_per_chunk"] == {"mean": H * D, "min": H * D, "max": H * D}


def test_unfitted_tokenizers_refuse_to_encode() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        UniformTokenizer(UniformConfig(H, D)).encode(DATA["smooth"][:1])
