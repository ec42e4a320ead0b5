"""Training an action tokenizer (Uniform, VQ, RVQ, FAST) on a dataset's action chunks.

Chunks are normalized with the normalization the policy will use (the dataset's stats when it has them, else
fitted here) and saved with the tokenizer: a token means a region of *normalized* action space, so a policy must
normalize exactly as the tokenizer did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer, reconstruction_report
from vla_policy_node.model.asa.tokenizers.fast import FastConfig, FastTokenizer
from vla_policy_node.model.asa.tokenizers.rvq import RVQConfig, RVQTokenizer
from vla_policy_node.model.asa.tokenizers.uniform import UniformConfig, UniformTokenizer
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.train.data import Sample, SampleDataset, fit_normalization

KINDS = ("uniform", "vq", "rvq", "fast")


@dataclass(frozen=True)
class TokenizerSpec:
    """kind: uniform | vq (RVQ with one codebook) | rvq | fast. Sizes default to the papers' choices."""

    kind: str
    bins: int = 256  # uniform
    codebook_size: int = 512  # vq / rvq
    depth: int = 2  # rvq (vq: 1)
    unit: str = "action"  # vq / rvq: a token group per action or per chunk
    latent_dim: int = 16
    hidden: int = 128
    scale: float = 10.0  # fast
    vocab_size: int = 2048  # fast

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"tokenizer kind must be one of {KINDS}, got {self.kind!r}")

    def build(self, horizon: int, action_dim: int) -> ActionTokenizer:
        if self.kind == "uniform":
            return UniformTokenizer(UniformConfig(horizon, action_dim, bins=self.bins))
        if self.kind == "fast":
            return FastTokenizer(FastConfig(horizon, action_dim, scale=self.scale, vocab_size=self.vocab_size))
        depth = 1 if self.kind == "vq" else self.depth
        return RVQTokenizer(RVQConfig(horizon, action_dim, unit=self.unit, codebook_size=self.codebook_size,
                                      depth=depth, latent_dim=self.latent_dim, hidden=self.hidden))


def action_chunks(dataset: SampleDataset, normalization: NormalizationSet, *, stride: int = 1,
                  tag: str | None = None) -> np.ndarray:
    """Normalized chunks [N, H, D] of every `stride`-th sample (of embodiment `tag`, default: the first seen)."""
    if stride < 1:
        raise ValueError("stride must be >= 1")
    chunks: list[np.ndarray] = []
    for i in range(0, len(dataset), stride):
        sample: Sample = dataset[i]
        tag = tag or sample.tag
        if sample.tag == tag:
            chunks.append(normalization[tag].action.normalize(sample.actions))
    if not chunks:
        raise ValueError("the dataset has no samples to take action chunks from")
    return np.stack(chunks)


def train_action_tokenizer(
    dataset: SampleDataset,
    spec: TokenizerSpec,
    *,
    normalization: NormalizationSet | None = None,
    stride: int = 1,
    holdout: float = 0.1,
    seed: int = 0,
    action_names: Sequence[str] | None = None,
    **train: Any,
) -> tuple[ActionTokenizer, NormalizationSet, dict[str, Any]]:
    """Fit a tokenizer on the dataset's chunks; report reconstruction error per dimension and tokens per chunk on
    the fitted chunks and on a held-out share of them (`holdout`)."""
    if normalization is None:
        normalization = fit_normalization([dataset[i] for i in range(0, len(dataset), stride)])
    chunks = action_chunks(dataset, normalization, stride=stride)
    order = np.random.default_rng(seed).permutation(len(chunks))
    n_test = round(holdout * len(chunks)) if len(chunks) > 1 else 0
    test, fit = chunks[order[:n_test]], chunks[order[n_test:]]
    tokenizer = spec.build(chunks.shape[1], chunks.shape[2])
    training = tokenizer.fit(fit, seed=seed, **train)
    report: dict[str, Any] = {"spec": spec.__dict__, "training": training,
                              "fit": reconstruction_report(tokenizer, fit, action_names)}
    if n_test:
        report["heldout"] = reconstruction_report(tokenizer, test, action_names)
    return tokenizer, normalization, report
