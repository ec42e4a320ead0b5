"""FAST action tokens (Pertsch et al. 2025, used by RoboAlign): DCT over time, scale + round, BPE over the integers.

Encode a normalized chunk [H, D]: DCT-II (norm='ortho') along time for each dimension, multiply by `scale`,
round to integers, flatten low-frequency first (coefficient 0 of every dimension, then coefficient 1, ...), map
each integer to one unicode character and byte-pair-encode the string with a BPE trained on the dataset's chunks
(the `tokenizers` library). Decoding inverts each step. The transform is orthonormal, so the rounding error of at
most 1/(2*scale) per coefficient bounds the reconstruction error: per dimension, RMS over the chunk <= 1/(2*scale).

Each BPE token stands for a known number of coefficients, so the token filter (`LengthBudgetGrammar`) only allows
tokens that fit in the H*D coefficients still missing, and <ACTION_END> exactly when none are: every filtered
sequence decodes to a full chunk. Sequences from elsewhere (e.g. generated text) may be short or long; the lenient
decode zero-pads or truncates the coefficients and flags the chunk invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
from tokenizers import Tokenizer, models, trainers

from vla_policy_node.model.asa.grammar import LengthBudgetGrammar
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer, config_asdict

BPE_FILE = "fast_bpe.json"
CHAR_BASE = 0x100  # first character used for integers: skips ASCII/control characters
MAX_RANGE = 0xD800 - CHAR_BASE  # stay below the surrogate block


@dataclass(frozen=True)
class FastConfig:
    horizon: int
    action_dim: int
    scale: float = 10.0
    vocab_size: int = 2048  # BPE vocabulary (RoboAlign: ~2K), including the integer alphabet
    min_int: int | None = None  # fitted range of the rounded coefficients
    max_int: int | None = None

    def __post_init__(self) -> None:
        if self.scale <= 0 or self.vocab_size < 2:
            raise ValueError(f"invalid FastConfig: {self}")


class FastTokenizer(ActionTokenizer):
    kind = "fast"

    def __init__(self, config: FastConfig, bpe: Tokenizer | None = None) -> None:
        super().__init__(config.horizon, config.action_dim)
        self.config = config
        self.bpe = bpe
        self._lengths: np.ndarray | None = None

    @classmethod
    def from_config(cls, data: dict[str, Any], directory: Path | None = None) -> FastTokenizer:
        config = FastConfig(**data)
        bpe = None
        if config.min_int is not None:
            if directory is None or not (directory / BPE_FILE).is_file():
                raise FileNotFoundError(f"fitted FAST tokenizer needs its BPE model {BPE_FILE} (in {directory})")
            bpe = Tokenizer.from_file(str(directory / BPE_FILE))
        return cls(config, bpe)

    def config_dict(self) -> dict[str, Any]:
        return config_asdict(self.config)

    def save_files(self, directory: Path) -> None:
        self._require_fitted()
        directory.mkdir(parents=True, exist_ok=True)
        self.bpe.save(str(directory / BPE_FILE))

    @property
    def fitted(self) -> bool:
        return self.bpe is not None and self.config.min_int is not None

    @property
    def vocab_size(self) -> int:
        """BPE tokens (the START/END wrapper adds 2 in the grammar's id space)."""
        self._require_fitted()
        return self.bpe.get_vocab_size()

    # --- integers <-> text ----------------------------------------------------------------------------------
    def coefficients(self, chunks: np.ndarray) -> np.ndarray:
        """[N, H, D] -> rounded, scaled DCT coefficients [N, H*D], low frequency first (not clipped)."""
        dct = scipy.fft.dct(self._check_shape(chunks), type=2, norm="ortho", axis=1)
        return np.rint(dct * self.config.scale).astype(np.int64).reshape(len(chunks), -1)

    def _text(self, ints: np.ndarray) -> str:
        return "".join(map(chr, (ints - self.config.min_int + CHAR_BASE).tolist()))

    def _ints(self, text: str) -> np.ndarray:
        return np.array([ord(ch) - CHAR_BASE + self.config.min_int for ch in text], np.int64)

    def _chunk(self, ints: np.ndarray) -> np.ndarray:
        coeffs = ints.reshape(self.horizon, self.action_dim) / self.config.scale
        return scipy.fft.idct(coeffs, type=2, norm="ortho", axis=0)

    # --- fit / encode / decode ------------------------------------------------------------------------------
    def fit(self, chunks: np.ndarray, **train: Any) -> dict[str, Any]:
        ints = self.coefficients(chunks)
        lo, hi = int(ints.min()), int(ints.max())
        if hi - lo >= MAX_RANGE:
            raise ValueError(f"FAST coefficient range {lo}..{hi} too wide: normalize actions or lower the scale")
        self.config = replace(self.config, min_int=lo, max_int=hi)
        alphabet = [chr(CHAR_BASE + i) for i in range(hi - lo + 1)]
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=max(self.config.vocab_size, len(alphabet)), special_tokens=[],
                                      initial_alphabet=alphabet, show_progress=False, min_frequency=2)
        bpe.train_from_iterator((self._text(row) for row in ints), trainer)
        self.bpe = bpe
        self._lengths = None
        return {"min_int": lo, "max_int": hi, "alphabet": len(alphabet), "vocab_size": bpe.get_vocab_size()}

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        self._require_fitted()
        ints = np.clip(self.coefficients(chunks), self.config.min_int, self.config.max_int)
        return [self.bpe.encode(self._text(row)).ids for row in ints]

    def clipped_fraction(self, chunks: np.ndarray) -> float:
        """Share of coefficients outside the fitted integer range (clipped by encode)."""
        ints = self.coefficients(chunks)
        return float(np.mean((ints < self.config.min_int) | (ints > self.config.max_int)))

    def wrap(self, tokens: Sequence[int]) -> list[int]:
        g = LengthBudgetGrammar
        return [g.START, *(int(t) + g.OFFSET for t in tokens), g.END]

    def unwrap(self, tokens: Sequence[int]) -> list[int]:
        g = LengthBudgetGrammar
        return [int(t) - g.OFFSET for t in tokens if int(t) >= g.OFFSET]

    def token_lengths(self) -> np.ndarray:
        """How many coefficients each BPE token stands for."""
        if self._lengths is None:
            vocab = self.bpe.get_vocab()
            lengths = np.zeros(len(vocab), np.int64)
            for token, index in vocab.items():
                lengths[index] = len(token)
            self._lengths = lengths
        return self._lengths

    def _text_of(self, tokens: Sequence[int]) -> str:
        return "".join(self.bpe.id_to_token(int(t)) or "" for t in self.unwrap(tokens))

    def _decode_valid(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        return np.stack([self._chunk(self._ints(self._text_of(seq))) for seq in tokens])

    def _decode_lenient(self, tokens: Sequence[int]) -> np.ndarray:
        vocab = self.bpe.get_vocab_size()
        known = [t for t in tokens if LengthBudgetGrammar.OFFSET <= int(t) < vocab + LengthBudgetGrammar.OFFSET]
        ints = self._ints(self._text_of(known))[: self.horizon * self.action_dim]
        padded = np.zeros(self.horizon * self.action_dim, np.int64)  # missing high frequencies: zero
        padded[: len(ints)] = ints
        return self._chunk(padded)

    def grammar(self) -> LengthBudgetGrammar:
        self._require_fitted()
        return LengthBudgetGrammar(self.token_lengths(), self.horizon * self.action_dim)
