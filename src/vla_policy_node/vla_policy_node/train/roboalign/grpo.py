"""Stage 2 of RoboAlign: GRPO on action prompts (Shao et al. 2024, as RoboAlign uses it).

Per prompt, G completions are sampled from the current policy and scored by a pluggable reward (default
r = (format + accuracy) / 2, `rewards.py`); advantages are group-relative, A = (r - mean_g) / (std_g + eps);
the loss is the token-level clipped ratio objective (old log-probs: the sampling policy) plus beta * KL to the
frozen reference model (k3 estimator: exp(ref - logp) - (ref - logp) - 1), averaged per completion, then over
completions. `inner_epochs` > 1 reuses a batch of samples for several updates (the clip then acts).

    python -m vla_policy_node.train.roboalign.grpo --config grpo.yaml
"""

from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vla_policy_node.model.asa.fast import fast_token_names
from vla_policy_node.model.vocabulary import add_tokens
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.train.roboalign.common import (
    Checkpoints,
    Metrics,
    RunConfig,
    SourceConfig,
    build_sources,
    load_config_file,
    make_accelerator,
    to_model_device,
)
from vla_policy_node.train.roboalign.data import ActionSamples, Mix, encode_prompts
from vla_policy_node.train.roboalign.mllm import (
    FORMAT_TOKENS,
    MLLMConfig,
    load_mllm,
    prepare_model,
    save_mllm,
)
from vla_policy_node.train.roboalign.rewards import REWARDS, Reward, accuracy_reward, format_reward
from vla_policy_node.train.trainer import lr_factor

FINAL = "final"


@dataclass(frozen=True)
class GRPOConfig:
    run: RunConfig
    mllm: MLLMConfig = field(default_factory=MLLMConfig)  # source: the SFT output (`<sft output>/final`)
    data: list[SourceConfig] = field(default_factory=list)  # lerobot sources: prompts and targets
    group_size: int = 5  # G completions per prompt
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off (transformers samples from the top 50 by default)
    clip_eps: float = 0.2
    kl_coef: float = 0.04
    inner_epochs: int = 1
    adv_eps: float = 1e-4
    reward: str = "roboalign"  # a name in rewards.REWARDS or "package.module:function"


def resolve_reward(name: str) -> Reward:
    if name in REWARDS:
        return REWARDS[name]
    module, _, attr = name.partition(":")
    if not attr:
        raise ValueError(f"unknown reward {name!r}: one of {sorted(REWARDS)} or 'package.module:function'")
    return getattr(importlib.import_module(module), attr)


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """[B*G] rewards (groups consecutive) -> (r - group mean) / (group std + eps)."""
    groups = rewards.view(-1, group_size)
    adv = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True, unbiased=False) + eps)
    return adv.reshape(-1)


def completion_mask(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Tokens up to and including the first EOS."""
    is_eos = ids == eos_id
    after = (is_eos.cumsum(1) - is_eos.long()) > 0
    return ~after


def sequence_logprobs(model: torch.nn.Module, prompt: dict[str, torch.Tensor], ids: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """Log-probs [B, L] of completion `ids` after the (left-padded) prompts."""
    length = ids.shape[1]
    inputs = dict(prompt)
    base = prompt["input_ids"]
    for key, value in prompt.items():
        if value.dim() == 2 and value.shape == base.shape:
            tail = {"input_ids": ids, "attention_mask": mask.to(value.dtype),
                    "token_type_ids": torch.ones_like(ids)}.get(key, torch.zeros_like(ids))
            inputs[key] = torch.cat([value, tail.to(value.dtype)], 1)
    logits = model(**inputs, use_cache=False).logits[:, -length - 1:-1].float()
    return torch.gather(logits.log_softmax(-1), 2, ids[..., None]).squeeze(-1)


def grpo_loss(logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
              clip_eps: float, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (loss, mean per-token KL to the reference)."""
    ratio = torch.exp(logp - old)
    a = adv[:, None]
    policy = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    diff = ref - logp
    kl = torch.exp(diff) - diff - 1
    m = mask.float()
    per_seq = ((policy + kl_coef * kl) * m).sum(1) / m.sum(1).clamp(min=1)
    return per_seq.mean(), (kl * m).sum() / m.sum().clamp(min=1)


def media_token_ids(model: torch.nn.Module) -> list[int]:
    """Image/video placeholder ids: never sampled (the forward pass would expect pixels for them)."""
    config = model.config
    ids = {getattr(config, k) for k in dir(config)
           if any(w in k for w in ("image", "video", "vision")) and k.endswith(("_token_id", "_token_index"))}
    return sorted(int(i) for i in ids if isinstance(i, int) and i >= 0)


def decode_completions(tokenizer, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    eos = tokenizer.eos_token_id
    texts = []
    for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):
        tokens = [t for t, k in zip(row, keep, strict=True) if k and t != eos]
        texts.append(tokenizer.decode(tokens, skip_special_tokens=False))
    return texts


def run_grpo(cfg: GRPOConfig, prompts: Mix | None = None, reward: Reward | None = None,
             until: int | None = None) -> tuple[Path, list[dict[str, float]]]:
    """Train; returns (final model directory, this call's per-step metrics). `prompts`: a Mix of ActionSamples
    (overrides cfg.data); `reward` overrides cfg.reward; `until`: stop early at that step."""
    if prompts is None:
        _, actions = build_sources(cfg.data)
        if not actions:
            raise ValueError("GRPO needs at least one lerobot (action) source")
        prompts = Mix(list(actions), [s.weight for s in cfg.data if s.kind == "lerobot"])
    reward_fn = reward or resolve_reward(cfg.reward)
    run = cfg.run
    g = cfg.group_size
    accelerator = make_accelerator(run)
    torch.manual_seed(run.seed)
    model, processor = load_mllm(cfg.mllm)
    tokenizer = processor.tokenizer
    vocab = max((a.tokenizer.vocab_size for a in prompts.sources if isinstance(a, ActionSamples)), default=0)
    add_tokens(model, processor.tokenizer, [*FORMAT_TOKENS, *fast_token_names(vocab)])  # no-op after SFT
    suppress = media_token_ids(model)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    model = prepare_model(cfg.mllm, model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=run.lr, weight_decay=run.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, run.warmup_steps, run.steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    reference.to(accelerator.device)
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(run.seed + accelerator.process_index)
    ckpts = Checkpoints(out, run.keep_checkpoints)
    step = ckpts.resume(accelerator, rng)
    stop = run.steps if until is None else min(until, run.steps)
    metrics = Metrics(out / "metrics.jsonl", accelerator.is_main_process)
    bar = tqdm(total=run.steps, initial=step, desc="grpo", disable=not (run.progress and accelerator.is_main_process))
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    try:
        while step < stop:
            batch = prompts.sample(rng, run.batch_size)
            prompt = to_model_device(encode_prompts(processor, batch, "left", repeat=g), model)
            model.eval()
            with torch.no_grad():
                generated = accelerator.unwrap_model(model).generate(
                    **prompt, do_sample=True, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                    top_p=cfg.top_p, top_k=cfg.top_k, suppress_tokens=suppress,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            ids = generated[:, prompt["input_ids"].shape[1]:]
            mask = completion_mask(ids, tokenizer.eos_token_id)
            texts = decode_completions(tokenizer, ids, mask)
            targets = [s.target or [] for s in batch for _ in range(g)]
            rewards = torch.tensor([reward_fn(t, y) for t, y in zip(texts, targets, strict=True)])
            adv = group_advantages(rewards, g, cfg.adv_eps).to(ids.device)
            with torch.no_grad():
                old = sequence_logprobs(model, prompt, ids, mask)
                ref = sequence_logprobs(reference, prompt, ids, mask)
            model.train()
            for _ in range(cfg.inner_epochs):
                with accelerator.autocast():
                    logp = sequence_logprobs(model, prompt, ids, mask)
                    loss, kl = grpo_loss(logp, old, ref, adv, mask, cfg.clip_eps, cfg.kl_coef)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(params, run.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            row = {"step": step, "loss": float(loss.item()), "reward": float(rewards.mean()),
                   "format_rate": _mean(format_reward(t) for t in texts),
                   "accuracy": _mean(accuracy_reward(t, y) for t, y in zip(texts, targets, strict=True)),
                   "kl": float(kl.item()), "completion_length": float(mask.sum(1).float().mean()),
                   "lr": scheduler.get_last_lr()[0], "elapsed_s": round(time.perf_counter() - start, 3)}
            history.append(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.4f}")
            if step % run.log_every == 0 or step == stop:
                metrics.write(row)
            if step % run.save_every == 0 or step in (stop, run.steps):
                ckpts.save(accelerator, step, rng)
    finally:
        bar.close()
        metrics.close()
    final = out / FINAL
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and step >= run.steps:
        save_mllm(accelerator.unwrap_model(model), processor, final)
    accelerator.wait_for_everyone()
    return final, history


def _mean(values: Sequence[float] | object) -> float:
    vals = list(values)  # type: ignore[arg-type]
    return float(np.mean(vals)) if vals else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = CliParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML/JSON: run, mllm (source: SFT output), data, ...")
    args = parser.parse_args(argv)
    final, _ = run_grpo(load_config_file(GRPOConfig, args.config))
    print(f"aligned MLLM: {final}")


if __name__ == "__main__":
    main()
