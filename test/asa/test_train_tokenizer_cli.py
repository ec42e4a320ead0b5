"""Training and saving a tokenizer from a SampleDataset, through the library call and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test.asa.trajectories import smooth_chunks
from vla_policy_node.cli import train_action_tokenizer as cli
from vla_policy_node.model.asa.tokenizers.storage import load_tokenizer
from vla_policy_node.train.action_tokenizer import TokenizerSpec, action_chunks, train_action_tokenizer
from vla_policy_node.train.data import Sample, fit_normalization

H, D = 4, 3


def dataset(n: int = 120) -> list[Sample]:
    """Samples whose chunks are smooth segments in physical units (offset and scaled per dimension)."""
    chunks = smooth_chunks(n, H, D, seed=5) * np.array([0.5, 2.0, 0.1]) + np.array([1.0, -3.0, 0.0])
    image = np.zeros((8, 8, 3), np.uint8)
    return [Sample({"cam": image}, np.zeros(2), c, "", "arm") for c in chunks]


def test_chunks_are_normalized_with_the_given_stats() -> None:
    data = dataset()
    norm = fit_normalization(data)
    chunks = action_chunks(data, norm, stride=2)
    assert chunks.shape == (60, H, D)
    np.testing.assert_allclose(chunks[1], norm["arm"].action.normalize(data[2].actions))
    assert np.quantile(chunks, 0.01) == pytest.approx(-1.0, abs=0.05)  # quantile mode: q01..q99 -> -1..1


@pytest.mark.parametrize("kind", ["uniform", "fast", "vq", "rvq"])
def test_train_action_tokenizer_reports_per_dimension(kind: str) -> None:
    spec = TokenizerSpec(kind=kind, bins=32, codebook_size=16, hidden=32, latent_dim=4, vocab_size=128)
    tokenizer, norm, report = train_action_tokenizer(dataset(), spec, holdout=0.25, action_names=["x", "y", "z"],
                                                     steps=100)
    assert tokenizer.kind == ("rvq" if kind == "vq" else kind) and tokenizer.fitted
    assert "arm" in norm.by_tag
    for part in ("fit", "heldout"):
        assert list(report[part]["mse_per_dim"]) == ["x", "y", "z"]
        assert report[part]["tokens_per_chunk"]["mean"] >= 1
    assert report["heldout"]["chunks"] == 30 and report["fit"]["chunks"] == 90
    if kind == "uniform":
        assert report["fit"]["tokens_per_chunk"]["mean"] == H * D


def test_cli_trains_saves_and_prints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    data = dataset()
    monkeypatch.setattr(cli, "load_dataset", lambda path, horizon, split: (data, None, ["x", "y", "z"]))
    out = tmp_path / "tok"
    assert cli.main([str(tmp_path / "dataset"), str(out), "--kind", "fast", "--horizon", str(H),
                     "--vocab-size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "tokens/chunk" in printed and "heldout" in printed and "  y " in printed
    tokenizer, norm = load_tokenizer(out)
    assert tokenizer.kind == "fast" and norm is not None and "arm" in norm.by_tag
    assert json.loads((out / "report.json").read_text())["fit"]["chunks"] == 108
