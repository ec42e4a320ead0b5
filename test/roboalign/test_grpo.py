import json

import numpy as np
import pytest
import torch

from test.roboalign.toy import single_thread, toy_actions
from vla_policy_node.train.roboalign.common import RunConfig
from vla_policy_node.train.roboalign.data import Mix
from vla_policy_node.train.roboalign.grpo import (
    GRPOConfig,
    completion_mask,
    group_advantages,
    grpo_loss,
    resolve_reward,
    run_grpo,
)
from vla_policy_node.train.roboalign.rewards import TOKEN_RE, roboalign_reward

MAX_NEW = 6


def action_share(completion: str, target) -> float:
    """Learnable from scratch: the share of generated tokens that are FAST action tokens."""
    return len([t for t in TOKEN_RE.findall(completion) if t.startswith("<fast_")]) / MAX_NEW


def test_group_advantages_by_hand():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0]), 3, eps=0.0)[:3]
    std = np.std([1.0, 0.0, 0.5])
    assert adv.tolist() == pytest.approx([0.5 / std, -0.5 / std, 0.0])
    same = group_advantages(torch.tensor([1.0, 1.0, 3.0, 3.0]), 2)
    assert same.tolist() == [0.0, 0.0, 0.0, 0.0]  # equal rewards: no signal


def test_completion_mask_stops_after_eos():
    mask = completion_mask(torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]]), eos_id=2)
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True]]


def test_loss_clips_ratio_and_penalizes_kl():
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    logp = torch.log(torch.tensor([[2.0, 2.0]]))  # ratio 2, clipped at 1.2 for a positive advantage
    loss, kl = grpo_loss(logp, old, old, torch.tensor([1.0]), mask, clip_eps=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-1.2) and kl.item() > 0
    loss_kl, _ = grpo_loss(logp, old, old, torch.tensor([1.0]), mask, clip_eps=0.2, kl_coef=1.0)
    assert loss_kl.item() == pytest.approx(-1.2 + kl.item())


def test_reward_is_pluggable_by_name():
    assert resolve_reward("roboalign") is roboalign_reward
    assert resolve_reward("test.roboalign.test_grpo:action_share") is action_share
    with pytest.raises(ValueError):
        resolve_reward("nope")


@pytest.mark.slow
def test_grpo_raises_mean_reward(tmp_path):
    single_thread()
    cfg = GRPOConfig(run=RunConfig(output_dir=str(tmp_path), steps=40, batch_size=3, lr=2e-2, warmup_steps=2,
                                   cpu=True, progress=False, log_every=1, save_every=20), max_new_tokens=MAX_NEW)
    final, history = run_grpo(cfg, Mix([toy_actions(8)]), reward=action_share)
    rewards = [h["reward"] for h in history]
    assert np.mean(rewards[-8:]) > np.mean(rewards[:8]) + 0.3, rewards
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 40
    assert {"reward", "format_rate", "accuracy", "kl", "completion_length", "loss"} <= set(rows[-1])
    assert rows[-1]["kl"] > 0 and rows[-1]["completion_length"] <= MAX_NEW
    assert (final / "model.safetensors").is_file()


@pytest.mark.slow
def test_grpo_raises_the_roboalign_reward_after_sft(tmp_path):
    """The real reward on the toy action task: SFT to a model that is often, not always, right when sampling,
    then GRPO raises format rate and prefix accuracy."""
    from vla_policy_node.train.roboalign.mllm import MLLMConfig
    from vla_policy_node.train.roboalign.sft import SFTConfig, run_sft

    single_thread()
    actions = toy_actions(8)
    sft_run = RunConfig(output_dir=str(tmp_path / "sft"), steps=80, batch_size=4, lr=1e-2, warmup_steps=5,
                        cpu=True, progress=False)
    aligned, _ = run_sft(SFTConfig(run=sft_run), Mix([actions]))
    cfg = GRPOConfig(run=RunConfig(output_dir=str(tmp_path / "grpo"), steps=30, batch_size=2, lr=1e-3,
                                   warmup_steps=0, cpu=True, progress=False, save_every=100),
                     mllm=MLLMConfig(source=str(aligned)), max_new_tokens=48, kl_coef=0.01)
    _, history = run_grpo(cfg, Mix([actions]))
    rewards = [h["reward"] for h in history]
    assert np.mean(rewards[-8:]) > np.mean(rewards[:8]) + 0.1, rewards
    assert np.mean([h["format_rate"] for h in history[-8:]]) > np.mean([h["format_rate"] for h in history[:8]])


def test_interrupted_grpo_resumes_exactly(tmp_path):
    single_thread()

    def cfg(out):
        return GRPOConfig(run=RunConfig(output_dir=str(tmp_path / out), steps=6, batch_size=2, lr=2e-2,
                                        warmup_steps=1, cpu=True, progress=False), max_new_tokens=MAX_NEW)

    _, straight = run_grpo(cfg("a"), Mix([toy_actions(8)]), reward=action_share)
    _, first = run_grpo(cfg("b"), Mix([toy_actions(8)]), reward=action_share, until=3)
    _, rest = run_grpo(cfg("b"), Mix([toy_actions(8)]), reward=action_share)
    assert [h["step"] for h in first + rest] == list(range(1, 7))
    for key in ("reward", "loss", "kl"):
        np.testing.assert_allclose([h[key] for h in first + rest], [h[key] for h in straight], rtol=1e-4, atol=1e-6)
