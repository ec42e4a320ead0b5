"""Every adapter, trained through the ordinary Trainer on a tiny LoRA backbone, overfits four demonstrations and
serves them back from its saved checkpoint through the ordinary policy APIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from test.asa.helpers import CONTINUOUS, DISCRETE, TARGETS, build
from test.model.helpers import observation
from vla_policy_node.model.vla_policy import DiscreteActionPolicy, VLAPolicy
from vla_policy_node.spec import Embodiment
from vla_policy_node.train.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.slow  # training runs

# Pred adapters read one hidden state and get no token feedback; on a random tiny backbone they need twice the
# steps of the token adapters to separate the four scenes (both budgets checked on six seeds).
STEPS = {"pred": 300, "discrete_pred": 300}
DEFAULT_STEPS = 150


def chunks(policy: VLAPolicy, emb: Embodiment) -> np.ndarray:
    return np.stack([policy.infer(observation(emb, color)).actions for color in TARGETS])


@pytest.mark.parametrize("adapter", CONTINUOUS + DISCRETE)
def test_policy_with_adapter_overfits_a_small_dataset(adapter: str, sim_arm: Embodiment, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, norm, data = build(adapter, sim_arm)
    demos = np.stack([s.actions for s in data])
    before = None if adapter in DISCRETE else np.abs(chunks(VLAPolicy(model, norm, sim_arm), sim_arm) - demos).mean()
    steps = STEPS.get(adapter, DEFAULT_STEPS)
    config = TrainConfig(output_dir=str(tmp_path), steps=steps, batch_size=4, lr=3e-3, warmup_steps=10,
                         save_every=10**6, progress=False)
    losses = Trainer(model, norm, data, config).train()
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])
    saved = tmp_path / f"checkpoint-{steps:07d}"
    if adapter in DISCRETE:
        policy = DiscreteActionPolicy.from_checkpoint(saved)
        assert policy.act_batch([s.images for s in data], [s.instruction for s in data]) == [0, 1, 2, 3]
        return
    got = chunks(VLAPolicy.from_checkpoint(saved, sim_arm, dtype=torch.float32), sim_arm)
    if adapter == "pred":
        assert np.abs(got - demos).mean() < 0.1 * before
        return
    # A token policy that overfits emits the demonstrations' own token sequences: its chunks are exactly the
    # tokenizer's reconstructions of the demonstrations (their error is the tokenizer's, not the policy's).
    action_norm = norm[sim_arm.tag].action
    tokenizer = model.head.tokenizer
    trained_on = action_norm.normalize(demos).astype(np.float32)  # what collation fed the trainer
    expected = action_norm.unnormalize(tokenizer.roundtrip(trained_on))
    np.testing.assert_allclose(got, expected, atol=1e-4)
