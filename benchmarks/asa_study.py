"""A small reproduction of Szot et al. (2024)'s action-space-adapter study on this project's stack.

    python benchmarks/asa_study.py             # default small settings: a few minutes on 2 CPU cores
    python benchmarks/asa_study.py --quick     # smoke run
    python benchmarks/asa_study.py --steps 3000 --demos 200 --episodes 50 --babyai-demos 400 --babyai-episodes 100

Every adapter trains on the same data with the same Trainer, backbone (a tiny Qwen2.5-VL built from a config,
random init, LoRA as in the paper unless --backbone says otherwise), steps, batch and seed, and is evaluated the
same way:
- continuous (Pred, Uniform, VQ, RVQ, FAST): closed loop on the simulated arm's reach tasks (sim/ + experiments/: the
  policy node and command mux on a simulated clock) on layouts never used for demonstrations; also the open-loop
  chunk MSE on held-out demonstrations and each tokenizer's reconstruction MSE on them (normalized units).
  The default robot config gives the target position in the state (as the team's CI learning test does): a
  random-init tiny backbone does not learn to see in minutes. Meta-World is not available in this environment.
- discrete (Pred, Lang, SemLang): BabyAI with its bot as the expert: success within --babyai-max-steps, and
  open-loop accuracy on held-out bot steps; a uniformly random policy is listed for reference.
Absolute numbers cannot match the paper's (pretrained LLaVA-1.5-7B, many more demonstrations); the machinery does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vla_policy_node.model.asa.build import build_asa_vla, discrete_normalization, discrete_slot
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer, reconstruction_report
from vla_policy_node.model.backbone import BackboneConfig, LoraSpec
from vla_policy_node.model.tiny import tiny_backbone_config, tiny_processor
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.model.vla_policy import DiscreteActionPolicy, VLAPolicy
from vla_policy_node.spec import Observation
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.train.action_tokenizer import TokenizerSpec
from vla_policy_node.train.data import Sample, SampleDataset
from vla_policy_node.train.trainer import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
CONTINUOUS = ("pred", "uniform", "vq", "rvq", "fast")
DISCRETE = ("discrete_pred", "lang", "semlang")
HELDOUT_SEEDS_FROM = 2_000_000  # held-out demonstrations; training ones start at demos.TRAIN_SEEDS_FROM
BABYAI_TRAIN_SEEDS_FROM = 100_000  # evaluation layouts are seeds 0..N-1


@dataclass
class Row:
    adapter: str
    space: str
    evaluation: str
    success: float = math.nan
    open_loop: float = math.nan  # continuous: chunk MSE (normalized); discrete: accuracy
    recon: float = math.nan  # tokenizer round-trip MSE on held-out chunks (normalized)
    tokens: float = math.nan  # mean tokens per chunk
    final_loss: float = math.nan
    train_s: float = math.nan
    extra: dict = field(default_factory=dict)


# --- shared ---------------------------------------------------------------------------------------------------
def backbone_config(args: argparse.Namespace) -> BackboneConfig:
    overrides: dict = {"image_size": 56}
    if args.backbone == "lora":
        overrides["lora"] = LoraSpec(rank=16, alpha=32, dropout=0.0)
    elif args.backbone == "full":
        overrides["freeze"] = False
    return tiny_backbone_config("qwen2_5_vl", **overrides)


def train(model: VLAModel, normalization: NormalizationSet, data: SampleDataset, out: Path,
          args: argparse.Namespace) -> tuple[float, float]:
    config = TrainConfig(output_dir=str(out), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         warmup_steps=min(50, args.steps // 10), save_every=10**9, keep_checkpoints=1,
                         seed=args.seed, progress=False, resume=False)
    start = time.perf_counter()
    losses = Trainer(model, normalization, data, config).train()
    return float(np.mean(losses[-20:])), time.perf_counter() - start


class Samples:
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


# --- continuous: the simulated arm ----------------------------------------------------------------------------
def load_demos(robot: Embodiment, directory: Path, episodes: int, first_seed: int, horizon: int):
    from vla_policy_node.experiments.sim_arm.demos import demonstration_dataset
    from vla_policy_node.train.lerobot_dataset import LeRobotSamples

    stats, _ = demonstration_dataset(robot, directory, episodes, first_seed=first_seed)
    source = LeRobotSamples(directory / "dataset", split=None, horizon=horizon, tag=robot.tag)
    return [source[i] for i in range(len(source))], source.normalization(), stats


def fit_tokenizers(args: argparse.Namespace, train_chunks: np.ndarray, test_chunks: np.ndarray,
                   horizon: int, dim: int) -> dict[str, tuple[ActionTokenizer, dict]]:
    specs = {
        "uniform": TokenizerSpec("uniform", bins=args.bins),
        "vq": TokenizerSpec("vq", codebook_size=args.codebook_size, unit=args.unit),
        "rvq": TokenizerSpec("rvq", codebook_size=args.codebook_size, depth=args.depth, unit=args.unit),
        "fast": TokenizerSpec("fast", vocab_size=args.fast_vocab),
    }
    out = {}
    for kind, spec in specs.items():
        tokenizer = spec.build(horizon, dim)
        training = tokenizer.fit(train_chunks, steps=args.tokenizer_steps, seed=args.seed)
        report = reconstruction_report(tokenizer, test_chunks)
        out[kind] = (tokenizer, {"training": training, "heldout": report})
        print(f"  tokenizer {kind:<8} held-out MSE {report['mse']:.2e}  tokens/chunk "
              f"{report['tokens_per_chunk']['mean']:.1f}", flush=True)
    return out


def observation_of(sample: Sample) -> Observation:
    return Observation(stamp=0.0, images=sample.images, state=sample.state, instruction=sample.instruction)


def open_loop_mse(policy: VLAPolicy, samples: list[Sample], normalization: NormalizationSet) -> float:
    action = normalization[policy.embodiment.tag].action
    errors = []
    for start in range(0, len(samples), 16):
        batch = samples[start:start + 16]
        chunks = policy.infer_batch([observation_of(s) for s in batch])
        for sample, chunk in zip(batch, chunks, strict=True):
            errors.append(np.mean((action.normalize(chunk.actions) - action.normalize(sample.actions)) ** 2))
    return float(np.mean(errors))


def evaluation_robot(robot: Embodiment, inference_hz: float) -> Embodiment:
    """The robot with the policy node's re-plan cap at `inference_hz` (the same for every adapter): the simulated
    clock waits for each inference, so this bounds the CPU time of an episode, not the policy's reaction."""
    return dataclasses.replace(robot, rates=dataclasses.replace(robot.rates, inference_hz=inference_hz))


def continuous_study(args: argparse.Namespace, out: Path) -> list[Row]:
    from vla_policy_node.experiments.sim_arm.closed_loop import ClosedLoopSystem, evaluate
    from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM

    robot = load_embodiment(args.robot)
    h = args.horizon
    print(f"[sim arm] {args.demos} training + {args.heldout_demos} held-out expert demonstrations ({robot.name})",
          flush=True)
    train_samples, norm, stats = load_demos(robot, out / "sim_demos", args.demos, TRAIN_SEEDS_FROM, h)
    test_samples, _, _ = load_demos(robot, out / "sim_heldout", args.heldout_demos, HELDOUT_SEEDS_FROM, h)
    action = norm[robot.tag].action
    train_chunks = np.stack([action.normalize(s.actions) for s in train_samples])
    test_chunks = np.stack([action.normalize(s.actions) for s in test_samples])
    print(f"  {len(train_samples)} training / {len(test_samples)} held-out samples, chunks [{h}, {robot.action_dim}];"
          f" expert success {stats.successes}/{stats.episodes}", flush=True)
    tokenizers = fit_tokenizers(args, train_chunks, test_chunks, h, robot.action_dim)
    bcfg = backbone_config(args)
    rows = []
    for adapter in CONTINUOUS:
        if adapter not in args.adapters:
            continue
        torch.manual_seed(args.seed)
        tokenizer = tokenizers[adapter][0] if adapter in tokenizers else None
        model = build_asa_vla(bcfg, adapter, processor=tiny_processor(bcfg), embodiments=[robot], tokenizer=tokenizer,
                              horizon=h, hidden=args.hidden)
        loss, seconds = train(model, norm, Samples(train_samples), out / "runs" / adapter, args)
        policy = VLAPolicy(model, norm, robot, seed=args.seed)
        row = Row(adapter, "continuous", f"sim arm closed loop ({args.episodes} layouts)", final_loss=loss,
                  train_s=seconds, open_loop=open_loop_mse(policy, test_samples[:args.open_loop_samples], norm))
        if adapter in tokenizers:
            report = tokenizers[adapter][1]["heldout"]
            row.recon, row.tokens = report["mse"], report["tokens_per_chunk"]["mean"]
        else:
            row.tokens = 0.0
        system = ClosedLoopSystem(evaluation_robot(robot, args.inference_hz), policy)
        try:
            result = evaluate(system, range(args.episodes))
        finally:
            system.close()
        row.success = result.success_rate
        row.extra = {"latency_p50_ms": result.summary()["latency_p50_ms"], "eval_wall_s": result.wall_seconds}
        print(f"  {adapter:<8} loss {loss:.3f}  open-loop MSE {row.open_loop:.3f}  success {row.success:.2f}  "
              f"(train {seconds:.0f} s, eval {result.wall_seconds:.0f} s, p50 {row.extra['latency_p50_ms']:.0f} ms)",
              flush=True)
        rows.append(row)
    return rows


# --- discrete: BabyAI -----------------------------------------------------------------------------------------
def discrete_study(args: argparse.Namespace, out: Path) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import asa_study_babyai as babyai

    env, max_steps = args.babyai_env, args.babyai_max_steps
    print(f"[babyai] {env}: {args.babyai_demos} bot episodes for training, {args.babyai_heldout} held out", flush=True)
    first = BABYAI_TRAIN_SEEDS_FROM
    demos = babyai.bot_demonstrations(env, range(first, first + args.babyai_demos), max_steps)
    heldout = babyai.bot_demonstrations(env, range(first + args.babyai_demos,
                                                   first + args.babyai_demos + args.babyai_heldout), max_steps)
    print(f"  {len(demos.samples)} training / {len(heldout.samples)} held-out steps; bot success "
          f"{demos.successes}/{demos.episodes}", flush=True)
    eval_seeds = range(args.babyai_episodes)
    rows = [Row("random", "discrete", f"BabyAI ({args.babyai_episodes} episodes)", tokens=0.0,
                success=babyai.success_rate(babyai.random_actions(args.seed), env, eval_seeds, max_steps),
                open_loop=1 / len(babyai.ACTIONS))]
    norm = discrete_normalization(babyai.TAG)
    bcfg = backbone_config(args)
    for adapter in DISCRETE:
        if adapter not in args.adapters:
            continue
        torch.manual_seed(args.seed)
        model = build_asa_vla(bcfg, adapter, processor=tiny_processor(bcfg),
                              slots=[discrete_slot(babyai.TAG, [babyai.CAMERA])],
                              actions=babyai.ACTIONS, phrases=babyai.PHRASES if adapter == "semlang" else None,
                              hidden=args.hidden, lang_seed=args.seed)
        loss, seconds = train(model, norm, Samples(demos.samples), out / "runs" / adapter, args)
        policy = DiscreteActionPolicy(model, seed=args.seed)
        predicted = []
        for start in range(0, len(heldout.samples), 32):
            batch = heldout.samples[start:start + 32]
            predicted += policy.act_batch([s.images for s in batch], [s.instruction for s in batch])
        truth = [int(s.actions[0, 0]) for s in heldout.samples]
        tokens = model.config.head.token_ids
        lengths = [len(seq) for seq in tokens.sequences] if tokens is not None else [0]
        row = Row(adapter, "discrete", f"BabyAI ({args.babyai_episodes} episodes)", final_loss=loss,
                  train_s=seconds, open_loop=float(np.mean(np.array(predicted) == np.array(truth))),
                  tokens=float(np.mean(lengths)),
                  success=babyai.success_rate(policy.act_batch, env, eval_seeds, max_steps))
        if tokens is not None:
            row.extra = {"phrases": list(model.config.head.phrases)}
        print(f"  {adapter:<13} loss {loss:.3f}  held-out accuracy {row.open_loop:.2f}  success {row.success:.2f}  "
              f"(train {seconds:.0f} s)", flush=True)
        rows.append(row)
    return rows


# --- output ---------------------------------------------------------------------------------------------------
def table(rows: list[Row]) -> str:
    def fmt(value: float, spec: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    header = (f"{'adapter':<14}{'space':<12}{'success':>8}{'open-loop':>11}{'recon MSE':>11}{'tokens':>8}"
              f"{'loss':>8}{'train s':>9}  evaluation")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.adapter:<14}{r.space:<12}{fmt(r.success, '.2f'):>8}{fmt(r.open_loop, '.3f'):>11}"
                     f"{fmt(r.recon, '.2e'):>11}{fmt(r.tokens, '.1f'):>8}{fmt(r.final_loss, '.3f'):>8}"
                     f"{fmt(r.train_s, '.0f'):>9}  {r.evaluation}")
    lines.append("open-loop: continuous = chunk MSE on held-out demonstrations (normalized units); discrete = "
                 "accuracy on held-out bot steps. recon MSE: tokenizer round trip on the held-out chunks.")
    return "\n".join(lines)


def notes(args: argparse.Namespace) -> list[str]:
    out = []
    if args.only in (None, "continuous"):
        out += [f"continuous: {Path(args.robot).name}, chunks of {args.horizon} actions; closed loop through the "
                f"policy node + mux, re-planning at {args.inference_hz} Hz for every adapter; RTC guidance does not "
                "apply to adapters (the executor blends each new chunk in). Meta-World: not available here; "
                "open-loop figures use held-out demonstrations."]
    if args.only in (None, "discrete"):
        out += [f"discrete: {args.babyai_env}, episodes cut at {args.babyai_max_steps} steps; 'random' = uniform "
                "over the 7 actions."]
    out.append("Backbones are random-init and tiny: compare adapters with each other, not with the paper's numbers.")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/asa_study"))
    p.add_argument("--quick", action="store_true", help="smallest settings (a smoke run)")
    p.add_argument("--only", choices=("continuous", "discrete"), default=None)
    p.add_argument("--adapters", default=",".join(CONTINUOUS + DISCRETE))
    p.add_argument("--backbone", choices=("lora", "full", "frozen"), default="lora")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=128, help="width of the adapters' MLPs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    g = p.add_argument_group("simulated arm")
    g.add_argument("--robot", default=str(REPO / "config" / "sim" / "sim_arm_target_state.yaml"))
    g.add_argument("--horizon", type=int, default=8)
    g.add_argument("--demos", type=int, default=40)
    g.add_argument("--heldout-demos", type=int, default=8)
    g.add_argument("--episodes", type=int, default=10, help="closed-loop evaluation layouts")
    g.add_argument("--inference-hz", type=float, default=2.5, help="re-plan rate in closed loop (chunks: 0.8 s)")
    g.add_argument("--open-loop-samples", type=int, default=64)
    g.add_argument("--bins", type=int, default=256)
    g.add_argument("--codebook-size", type=int, default=512)
    g.add_argument("--depth", type=int, default=2)
    g.add_argument("--unit", choices=("action", "chunk"), default="action", help="VQ/RVQ token group per ...")
    g.add_argument("--tokenizer-steps", type=int, default=1500)
    g.add_argument("--fast-vocab", type=int, default=1024)
    g = p.add_argument_group("BabyAI")
    g.add_argument("--babyai-env", default="BabyAI-GoToRedBallNoDists-v0")
    g.add_argument("--babyai-demos", type=int, default=150)
    g.add_argument("--babyai-heldout", type=int, default=20)
    g.add_argument("--babyai-episodes", type=int, default=50)
    g.add_argument("--babyai-max-steps", type=int, default=20)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.demos, args.heldout_demos, args.episodes = 60, 6, 2, 2
        args.tokenizer_steps, args.codebook_size, args.open_loop_samples = 200, 64, 16
        args.babyai_demos, args.babyai_heldout, args.babyai_episodes = 10, 4, 8
    args.adapters = set(args.adapters.split(","))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")
    logging.getLogger("vla_policy_node.nodes").setLevel(logging.ERROR)  # per-episode node restarts: repeated notes
    logging.getLogger("vla_policy_node.model.vla_policy").setLevel(logging.ERROR)  # RTC note: in the summary
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[Row] = []
    if args.only in (None, "continuous"):
        rows += continuous_study(args, args.out)
    if args.only in (None, "discrete"):
        rows += discrete_study(args, args.out)
    print()
    print(f"Action-space adapters, tiny random-init Qwen2.5-VL ({args.backbone} backbone), {args.steps} steps x "
          f"batch {args.batch_size}, seed {args.seed}; {time.perf_counter() - start:.0f} s in all")
    print(table(rows))
    print("\n".join(notes(args)))
    settings = {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()}
    (args.out / "results.json").write_text(json.dumps({"settings": settings, "rows": [asdict(r) for r in rows]},
                                                      indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
