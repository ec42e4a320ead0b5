"""A toy robot dataset + fitted FAST tokenizer for the RoboAlign tests (tiny, deterministic)."""

from __future__ import annotations

import numpy as np
import torch

from vla_policy_node.model.asa.tokenizers.fast import FastConfig, FastTokenizer
from vla_policy_node.train.data import Sample, fit_normalization
from vla_policy_node.train.roboalign.data import ActionSamples

HORIZON, ACTION_DIM, STATE_DIM = 4, 2, 3
TASKS = ("pick up the red block", "open the top drawer")


def toy_samples(n: int = 8, seed: int = 0) -> list[Sample]:
    """Two tasks, each with its own smooth action chunk (so the answer depends on the instruction)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, HORIZON)[:, None]
    out = []
    for i in range(n):
        task = i % 2
        actions = np.hstack([np.sin(t + task), np.cos(2 * t - task)]) * (1 + task)
        image = np.full((32, 32, 3), 40 + 150 * task, np.uint8)
        out.append(Sample({"front": image}, rng.normal(size=STATE_DIM), actions, TASKS[task], "toy"))
    return out


def toy_actions(n: int = 8) -> ActionSamples:
    samples = toy_samples(n)
    norm = fit_normalization(samples)
    tokenizer = FastTokenizer(FastConfig(HORIZON, ACTION_DIM, scale=4.0, vocab_size=16))
    chunks = np.stack([norm["toy"].action.normalize(s.actions) for s in samples])
    tokenizer.fit(chunks)
    return ActionSamples(samples, tokenizer, norm)


def single_thread() -> None:
    torch.set_num_threads(1)
