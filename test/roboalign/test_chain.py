"""SFT -> GRPO -> VLA chain into a checkpoint the policy serves, with the aligned weights in its backbone."""

import numpy as np
import torch
from safetensors.torch import load_file

from test.model.helpers import COLORS, observation
from test.roboalign.toy import single_thread
from vla_policy_node.model.asa.tokenizers.fast import FastConfig, FastTokenizer
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.train.data import Sample, fit_normalization
from vla_policy_node.train.roboalign.common import RunConfig
from vla_policy_node.train.roboalign.data import ActionSamples, Mix
from vla_policy_node.train.roboalign.grpo import GRPOConfig, run_grpo
from vla_policy_node.train.roboalign.mllm import MLLMConfig
from vla_policy_node.train.roboalign.sft import SFTConfig, run_sft
from vla_policy_node.train.roboalign.vla import VLAStageConfig, run_vla

HORIZON = 4


def robot_samples(emb) -> list[Sample]:
    out = []
    for k, color in enumerate(COLORS):
        obs = observation(emb, color)
        target = np.linspace(-1.0, 1.0, emb.action_dim) * (0.8 - 0.4 * k)
        actions = obs.state[: emb.action_dim] + np.linspace(0, 1, HORIZON)[:, None] * target
        out.append(Sample(dict(obs.images), obs.state, actions, obs.instruction, emb.tag))
    return out


def test_three_stages_chain_into_a_served_checkpoint(tmp_path, sim_arm):
    single_thread()
    samples = robot_samples(sim_arm)
    norm = fit_normalization(samples)
    fast = FastTokenizer(FastConfig(HORIZON, sim_arm.action_dim, scale=2.0, vocab_size=32))
    fast.fit(np.stack([norm[sim_arm.tag].action.normalize(s.actions) for s in samples]))
    actions = ActionSamples(samples, fast, norm)
    run = {"batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "cpu": True, "progress": False}
    sft_dir, sft_losses = run_sft(SFTConfig(run=RunConfig(output_dir=str(tmp_path / "sft"), steps=6, **run)),
                                  Mix([actions]))
    grpo_dir, history = run_grpo(GRPOConfig(run=RunConfig(output_dir=str(tmp_path / "grpo"), steps=2, **run),
                                            mllm=MLLMConfig(source=str(sft_dir)), max_new_tokens=8, group_size=3),
                                 Mix([actions]))
    assert len(sft_losses) == 6 and len(history) == 2
    cfg = VLAStageConfig(aligned=str(grpo_dir), select_layer=2, head={"horizon": HORIZON, "dim": 32, "layers": 2,
                                                                          "heads": 4, "adapter_layers": 1},
                         train={"output_dir": str(tmp_path / "vla"), "steps": 4, "batch_size": 2, "lr": 1e-3,
                                "warmup_steps": 1, "progress": False})
    ckpt, losses = run_vla(cfg, samples, [sim_arm])
    assert len(losses) == 4 and all(np.isfinite(losses))
    policy = VLAPolicy.from_checkpoint(ckpt, sim_arm, seed=0)
    chunk = policy.infer(observation(sim_arm, "red")).actions
    assert chunk.shape == (HORIZON, sim_arm.action_dim) and np.isfinite(chunk).all()
    # the served backbone carries the aligned (GRPO) weights, frozen: not a fresh random init
    aligned = load_file(str(grpo_dir / "model.safetensors"))
    key = next(k for k in aligned if k.endswith("layers.0.self_attn.q_proj.weight") and "visual" not in k)
    served = dict(policy.model.backbone.model.named_parameters())
    name = next(n for n in served if n.endswith("layers.0.self_attn.q_proj.weight") and "visual" not in n)
    torch.testing.assert_close(served[name].float(), aligned[key].float())
