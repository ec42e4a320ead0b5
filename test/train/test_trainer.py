"""The trainer overfits a small dataset, checkpoints loadable policies, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test.model.helpers import COLORS, observation
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec import Embodiment
from vla_policy_node.train.data import Sample, fit_normalization
from vla_policy_node.train.trainer import TrainConfig, Trainer, lr_factor

TARGETS = {c: np.linspace(-1.0, 1.0, 7) * s for c, s in zip(COLORS, (0.8, -0.8, 0.4, -0.4), strict=True)}


def dataset(emb: Embodiment) -> list[Sample]:
    """Per color: from a fixed start, a straight 16-step path to that color's target."""
    out = []
    for color, target in TARGETS.items():
        obs = observation(emb, color)
        steps = np.linspace(0.0, 1.0, 16)[:, None]
        actions = obs.state + steps * (target - obs.state)
        out.append(Sample(dict(obs.images), obs.state, actions, obs.instruction, emb.tag))
    return out


def chunk_error(policy: VLAPolicy, emb: Embodiment) -> float:
    errs = [np.abs(policy.infer(observation(emb, c)).actions - s.actions).mean()
            for c, s in zip(TARGETS, dataset(emb), strict=True)]
    return float(np.mean(errs))


def test_lr_schedule_hand_values() -> None:
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)


def test_warmup_stable_decay_holds_the_peak_until_its_decay() -> None:
    # decay over the last 20% of 100 steps: 1 from the warmup's end to step 80, then the cosine to 0 at 100
    assert lr_factor(5, 10, 100, decay_fraction=0.2) == pytest.approx(0.6)
    assert lr_factor(50, 10, 100, decay_fraction=0.2) == pytest.approx(1.0)
    assert lr_factor(80, 10, 100, decay_fraction=0.2) == pytest.approx(1.0)
    assert lr_factor(90, 10, 100, decay_fraction=0.2) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100, decay_fraction=0.2) == pytest.approx(0.0)
    assert lr_factor(55, 10, 100, decay_fraction=1.0) == lr_factor(55, 10, 100)  # 1: the plain cosine


@pytest.mark.slow
def test_overfits_small_dataset(tmp_path: Path, sim_arm: Embodiment) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    data = dataset(sim_arm)
    norm = fit_normalization(data)
    before = chunk_error(VLAPolicy(model, norm, sim_arm, seed=0), sim_arm)
    cfg = TrainConfig(output_dir=str(tmp_path), steps=300, batch_size=8, lr=3e-3, warmup_steps=20,
                      save_every=1000, progress=False)
    losses = Trainer(model, norm, data, cfg).train()
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:20])
    # the saved checkpoint serves the trained behaviour
    trained = VLAPolicy.from_checkpoint(tmp_path / "checkpoint-0000300", sim_arm, seed=0)
    after = chunk_error(trained, sim_arm)
    assert after < 0.3 * before, (before, after)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 300 and metrics[0]["lr"] > 0


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path: Path, sim_arm: Embodiment) -> None:
    data = dataset(sim_arm)
    norm = fit_normalization(data)

    def trainer(out: Path, steps: int) -> Trainer:
        torch.manual_seed(0)
        model = build_tiny_vla([sim_arm])
        cfg = TrainConfig(output_dir=str(out), steps=steps, batch_size=4, lr=1e-3, warmup_steps=5,
                          save_every=10, progress=False)
        return Trainer(model, norm, data, cfg)

    straight = trainer(tmp_path / "a", 30).train()
    first = trainer(tmp_path / "b", 30).train(until=20)  # interrupted run
    resumed_trainer = trainer(tmp_path / "b", 30)
    rest = resumed_trainer.train()
    assert len(first) == 20 and len(rest) == 10 and resumed_trainer.step == 30
    np.testing.assert_allclose(first + rest, straight, rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-0000020",
                                                                             "checkpoint-0000030"]


def test_rejects_bad_samples(tmp_path: Path, sim_arm: Embodiment) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    good = dataset(sim_arm)
    norm = fit_normalization(good)
    bad = [Sample(good[0].images, good[0].state, good[0].actions[:8], "x", sim_arm.tag)]
    cfg = TrainConfig(output_dir=str(tmp_path), steps=1, batch_size=1, progress=False)
    with pytest.raises(ValueError, match=r"actions must be \[16, 7\]"):
        Trainer(model, norm, bad, cfg).train()
    with pytest.raises(ValueError, match="empty dataset"):
        Trainer(model, norm, [], cfg)


class _Counting(list):
    """A dataset that records which samples the trainer draws."""

    def __init__(self, samples: list[Sample]) -> None:
        super().__init__(samples)
        self.drawn: list[int] = []

    def __getitem__(self, index):
        self.drawn.append(int(index))
        return super().__getitem__(index)


def test_sample_weights_set_how_often_each_sample_is_drawn(tmp_path: Path, sim_arm: Embodiment) -> None:
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    data = _Counting(dataset(sim_arm))
    norm = fit_normalization(list(data))
    cfg = TrainConfig(output_dir=str(tmp_path), steps=25, batch_size=8, save_every=1000, progress=False)
    Trainer(model, norm, data, cfg, sample_weights=np.array([0.0, 1.0, 0.0, 3.0])).train()
    counts = np.bincount(data.drawn, minlength=4)
    assert counts[0] == counts[2] == 0  # weight 0: never drawn
    assert counts.sum() == 200 and 2.0 < counts[3] / counts[1] < 4.5  # 3:1 up to sampling noise (n = 200)
    for bad in (np.ones(3), np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, -1.0, 1.0, 1.0]),
                np.array([1.0, np.nan, 1.0, 1.0])):
        with pytest.raises(ValueError, match="sample_weights"):
            Trainer(model, norm, data, cfg, sample_weights=bad)


def test_launched_ranks_share_out_the_batches_one_process_would_draw(tmp_path: Path, sim_arm: Embodiment) -> None:
    """Two ranks of batch 2 train on exactly the samples one process of batch 4 draws, step by step (with start
    frames weighted too): a run's data order does not depend on how many processes share it."""
    from vla_policy_node.train.distributed import Parallel

    data = dataset(sim_arm) * 5  # 20 samples
    norm = fit_normalization(data)
    model = build_tiny_vla([sim_arm])
    weights = np.arange(1.0, 21.0)
    for p in (None, weights):
        def trainer(batch: int, parallel: Parallel | None = None) -> Trainer:
            cfg = TrainConfig(output_dir=str(tmp_path), steps=10, batch_size=batch, seed=3, progress=False)
            return Trainer(model, norm, data, cfg, sample_weights=p, parallel=parallel)  # noqa: B023

        alone = trainer(4)
        ranks = [trainer(2, Parallel(rank=r, world_size=2)) for r in (0, 1)]
        for _ in range(5):
            whole = alone.batch_indices()
            shares = [r.batch_indices() for r in ranks]
            np.testing.assert_array_equal(np.concatenate(shares), whole)
            assert not np.array_equal(shares[0], shares[1])  # each rank its own samples
