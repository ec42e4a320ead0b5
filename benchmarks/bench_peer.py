"""LeRobot's SmolVLA next to ours at matched work, on the same inputs and the same device, in one run; the ratio.

    python benchmarks/bench_peer.py --lerobot-python /tmp/lerobot-venv/bin/python [--size small|500m]
                                    [--device cpu|cuda] [--runs 10] [--fast-path auto]

Matched work: the same VLM architecture (SmolVLM2-500M: SigLIP-base vision tower at 512x512, SmolLM2-360M text
model; `small` shrinks both for a CPU) cut at the same decoder layer (SmolVLA's `num_vlm_layers`, 16 of 32), the
same cameras (2 x 256x256 frames, resized to 512x512 by both: 64 image tokens each), the same instruction, a
chunk of 50 actions from 10 flow-matching steps (SmolVLA's own settings), and action heads of similar size
(SmolVLA's expert: the VLM's width x 0.75, one layer per kept VLM layer; ours: a DiT of that depth whose
width gives the expert's parameter count).
Weights are random on both sides (latency does not depend on them). Each side is timed from observation to
action chunk including its own preprocessing (SmolVLA: its processor pipeline + predict_action_chunk; ours:
VLAPolicy.infer), after warm-up.

LeRobot pins its own torch and needs Python >= 3.12, so it runs in a side environment (a venv outside the repo;
README: "LeRobot side env"; lerobot 0.6.1's SmolVLA also needs transformers >= 5.4, < 5.6 and num2words: where
the side env has a newer transformers, `pip install --no-deps --target DIR "transformers>=5.4,<5.6"
"tokenizers<=0.23.0"` with the side env's pip and pass --lerobot-pythonpath DIR). This script writes the VLM's
config, tokenizer and image processor files (SmolVLA reads them as its `vlm_model_name`; nothing is downloaded)
and the shared inputs into --workdir, runs `--stage` with the side env's python, then times ours here, and
prints both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
INSTRUCTION = "put the black bowl on the plate"
STATE_DIM, ACTION_DIM, CAMERAS, FRAME = 8, 7, 2, (256, 256)

# SmolVLM2-500M-Video-Instruct's published architecture; `small` keeps its shape at a size a shared CPU runs.
ARCHITECTURES = {
    "500m": dict(text=dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                           num_key_value_heads=5, head_dim=64, rms_norm_eps=1e-5, max_position_embeddings=8192,
                           rope_theta=100000.0),
                 vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                             patch_size=16, image_size=512),
                 cut=16),
    "small": dict(text=dict(hidden_size=192, intermediate_size=512, num_hidden_layers=8, num_attention_heads=3,
                            num_key_value_heads=1, head_dim=64, rms_norm_eps=1e-5, max_position_embeddings=8192,
                            rope_theta=100000.0),
                  vision=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=2,
                              patch_size=16, image_size=512),
                  cut=4),
}


# -------------------------------------------------------------------------------------------- our side
def write_vlm_dir(size: str, directory: Path) -> dict:
    """A SmolVLM checkpoint directory of the architecture (random weights, bf16): config, weights, tokenizer (our
    offline tokenizer with SmolVLM's special tokens) and the image processor at 512 without tiling. SmolVLA reads
    its config and tokenizer (it builds its own random VLM); ours loads it as a checkpoint cut at the same layer."""
    import torch
    from transformers import SmolVLMConfig, SmolVLMModel
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    from vla_policy_node.model.tiny import build_tiny_tokenizer

    arch = ARCHITECTURES[size]
    tokenizer = build_tiny_tokenizer("smolvlm")
    text = {**arch["text"], "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "model_type": "llama", "tie_word_embeddings": True}
    config = SmolVLMConfig(text_config=text, vision_config=arch["vision"], scale_factor=4,
                           image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    SmolVLMModel(config).to(torch.bfloat16).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    tokenizer_config = directory / "tokenizer_config.json"  # SmolVLM's named image tokens, as its hub files have
    data = json.loads(tokenizer_config.read_text())
    data["extra_special_tokens"] = {"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                                    "global_image_token": "<global-img>", "end_of_utterance_token":
                                    "<end_of_utterance>"}
    tokenizer_config.write_text(json.dumps(data))
    edge = {"longest_edge": 512}
    SmolVLMImageProcessorPil(size=edge, max_image_size=edge, do_image_splitting=False).save_pretrained(directory)
    (directory / "processor_config.json").write_text(json.dumps({"processor_class": "SmolVLMProcessor",
                                                                 "image_seq_len": 64}))
    return {"config": json.loads(config.to_json_string(use_diff=False)), "cut": arch["cut"]}


def write_inputs(path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (CAMERAS, *FRAME, 3), dtype=np.uint8),
             state=rng.uniform(-1, 1, STATE_DIM).astype(np.float32))


def time_ours(args: argparse.Namespace, vlm: dict, inputs: Path) -> dict:
    import dataclasses

    import torch

    from vla_policy_node.model.backbone import BackboneConfig
    from vla_policy_node.model.fast_path import fast_path_preset
    from vla_policy_node.model.vla_model import VLAModel
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.spec import Observation, load_embodiment
    from vla_policy_node.spec.embodiment import CameraSpec
    from vla_policy_node.spec.normalization import normalization_from_limits

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = np.load(inputs)
    robot = load_embodiment(REPO / "config" / "robots" / "franka_fr3.yaml")
    robot = dataclasses.replace(robot, cameras=tuple(CameraSpec(name=f"cam{i}", topic=f"/cam{i}", height=FRAME[0],
                                                                width=FRAME[1]) for i in range(CAMERAS)))
    text = vlm["config"]["text_config"]
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    bcfg = BackboneConfig(family="smolvlm", source=str(args.workdir / "vlm"), select_layer=vlm["cut"], dtype=dtype)
    head = matched_head(int(text["hidden_size"]), vlm["cut"], args.expert_params_m)
    torch.manual_seed(0)
    model = VLAModel.build(bcfg, head, [robot])
    model.to(device=device, dtype=getattr(torch, dtype)).eval()
    policy = VLAPolicy(model, normalization_from_limits(robot), robot, num_steps=10,
                       sync_timing=device.type == "cuda", fast_path=fast_path_preset(args.fast_path, device))
    state = np.concatenate([data["state"][: robot.state_dim], np.zeros(max(0, robot.state_dim - STATE_DIM))])
    obs = Observation(0.0, {f"cam{i}": data["images"][i] for i in range(CAMERAS)}, state[: robot.state_dim],
                      INSTRUCTION)
    for _ in range(args.warmup):
        policy.infer(obs)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        policy.infer(obs)
        times.append(time.perf_counter() - start)
    return {"ms": _stats(times), "backbone_params_m": sum(p.numel() for p in model.backbone.parameters()) / 1e6,
            "head_params_m": sum(p.numel() for p in model.head.parameters()) / 1e6,
            "image_tokens": int((policy.model.backbone.prepare([list(obs.images.values())], [INSTRUCTION])
                                 ["input_ids"] == vlm["config"]["image_token_id"]).sum())}


def matched_head(vlm_width: int, layers: int, expert_params_m: float | None) -> dict:
    """Our flow head as deep as SmolVLA's expert (one block per cut VLM layer) and, when the expert's parameter
    count is known, the width (a multiple of 32) whose parameter count is closest to it; else 0.75 x the VLM's."""
    from vla_policy_node.model.flow_head import FlowHeadConfig, FlowMatchingHead

    base = {"layers": layers, "adapter_layers": 1, "horizon": 50, "num_steps": 10, "max_state_dim": 32,
            "max_action_dim": 32}

    def config(dim: int) -> dict:
        return {**base, "dim": dim, "heads": max(1, dim // 32)}

    if expert_params_m is None:
        return config(max(32, int(vlm_width * 0.75) // 32 * 32))

    def params(dim: int) -> float:
        head = FlowMatchingHead(FlowHeadConfig(backbone_dim=vlm_width, **config(dim)))
        return sum(p.numel() for p in head.parameters()) / 1e6

    return config(min(range(32, 2 * vlm_width + 1, 32), key=lambda d: abs(params(d) - expert_params_m)))


def _stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "n": int(ms.size)}


# ------------------------------------------------------------------------------- SmolVLA (side environment)
def stage_smolvla(workdir: Path, device: str, runs: int, warmup: int, cut: int, threads: int) -> dict:
    """Runs in LeRobot's environment: SmolVLAPolicy from the VLM files in `workdir`, random weights."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    if threads:
        torch.set_num_threads(threads)
    data = np.load(workdir / "inputs.npz")
    images = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, *FRAME)) for i in range(CAMERAS)}
    config = SmolVLAConfig(vlm_model_name=str(workdir / "vlm"), load_vlm_weights=False, chunk_size=50,
                           n_action_steps=50, num_steps=10, num_vlm_layers=cut, device=device,
                           input_features={**images, "observation.state": PolicyFeature(FeatureType.STATE,
                                                                                        (STATE_DIM,))},
                           output_features={"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))})
    torch.manual_seed(0)
    policy = SmolVLAPolicy(config).to(device).eval()
    stats = {"observation.state": {"mean": torch.zeros(STATE_DIM), "std": torch.ones(STATE_DIM)},
             "action": {"mean": torch.zeros(ACTION_DIM), "std": torch.ones(ACTION_DIM)}}
    pre, post = make_smolvla_pre_post_processors(config, stats)

    def observation() -> dict:
        obs = {f"observation.images.cam{i}": torch.from_numpy(data["images"][i]).permute(2, 0, 1).float() / 255
               for i in range(CAMERAS)}
        return {**obs, "observation.state": torch.from_numpy(data["state"]), "task": INSTRUCTION}

    def infer() -> torch.Tensor:
        policy.reset()
        actions = post(policy.predict_action_chunk(pre(observation())))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return actions

    for _ in range(warmup):
        out = infer()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = infer()
        times.append(time.perf_counter() - start)
    vlm_params = sum(p.numel() for p in policy.model.vlm_with_expert.vlm.parameters())
    expert_params = sum(p.numel() for p in policy.model.vlm_with_expert.lm_expert.parameters())
    return {"ms": _stats(times), "actions_shape": list(out.shape), "vlm_params_m": vlm_params / 1e6,
            "expert_params_m": expert_params / 1e6, "torch": torch.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lerobot-python", dest="lerobot_python", default="/tmp/lerobot-venv/bin/python",
                        help="python of the side environment with lerobot installed")
    parser.add_argument("--lerobot-pythonpath", dest="lerobot_pythonpath", default="",
                        help="prepended to the side environment's path: a --target install of the transformers "
                             "lerobot pins (>=5.4,<5.6 for 0.6.1) when the side env holds a newer one")
    parser.add_argument("--size", choices=sorted(ARCHITECTURES), default="small",
                        help="small: a shrunk SmolVLM for a CPU; 500m: SmolVLM2-500M's architecture")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads on both sides (0: default)")
    parser.add_argument("--fast-path", dest="fast_path", choices=("off", "auto", "full"), default="auto",
                        help="our side's fast path preset (model/fast_path.py)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_peer"))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--stage", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        workdir, device, runs, warmup, cut, threads = args.stage
        print(json.dumps(stage_smolvla(Path(workdir), device, int(runs), int(warmup), int(cut), int(threads))))
        return 0
    if not Path(args.lerobot_python).exists():
        print(f"bench_peer: no LeRobot side environment at {args.lerobot_python} (see the README's 'LeRobot side "
              "env'; lerobot 0.6 needs Python >= 3.12 and its own torch)", file=sys.stderr)
        return 2
    vlm = write_vlm_dir(args.size, args.workdir / "vlm")
    write_inputs(args.workdir / "inputs.npz")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    if args.lerobot_pythonpath:
        env["PYTHONPATH"] = args.lerobot_pythonpath
    proc = subprocess.run([args.lerobot_python, __file__, "--stage", str(args.workdir), args.device, str(args.runs),
                           str(args.warmup), str(vlm["cut"]), str(args.threads)], capture_output=True,
                          text=True, env=env, cwd=args.workdir)
    if proc.returncode != 0:
        print(f"bench_peer: SmolVLA failed in the side environment:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return 1
    smolvla = json.loads(proc.stdout.strip().splitlines()[-1])
    args.expert_params_m = smolvla["expert_params_m"]
    ours = time_ours(args, vlm, args.workdir / "inputs.npz")
    ratio = smolvla["ms"]["p50"] / ours["ms"]["p50"]
    print(f"matched work on {args.device}: SmolVLM architecture '{args.size}' cut at layer {vlm['cut']}, "
          f"{CAMERAS} cameras {FRAME[0]}x{FRAME[1]} -> 512x512, H=50, 10 flow steps, {args.threads or 'default'} "
          f"torch thread(s), {args.runs} runs after {args.warmup} warm-up; load average {os.getloadavg()[0]:.1f}")
    print(f"  LeRobot SmolVLA (lerobot 0.6.1, torch {smolvla['torch']}): p50 {smolvla['ms']['p50']:.1f} ms, "
          f"p99 {smolvla['ms']['p99']:.1f} ms; VLM {smolvla['vlm_params_m']:.1f}M (cut), expert "
          f"{smolvla['expert_params_m']:.1f}M params")
    print(f"  ours (fast path {args.fast_path}): p50 {ours['ms']['p50']:.1f} ms, p99 {ours['ms']['p99']:.1f} ms; "
          f"backbone {ours['backbone_params_m']:.1f}M (cut), head {ours['head_params_m']:.1f}M params, "
          f"{ours['image_tokens']} image tokens")
    print(f"  ratio SmolVLA / ours (p50): {ratio:.2f}x (goal >= 3x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"smolvla": smolvla, "ours": ours, "ratio_p50": ratio,
                                               "args": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
