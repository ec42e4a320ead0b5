"""Stage 1 of RoboAlign: supervised fine-tuning of the MLLM on a mix of VQA/reasoning and FAST-action answers.

Loss: next-token cross-entropy on the answer tokens only; vision tower frozen; full fine-tuning or LoRA of the
language model; AdamW with linear warmup + cosine decay (`train/trainer.py`'s `lr_factor`).

    python -m vla_policy_node.train.roboalign.sft --config sft.yaml
    accelerate launch --num_processes 8 [--use_fsdp ...] -m vla_policy_node.train.roboalign.sft --config sft.yaml
"""

from __future__ import annotations

import time
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
from vla_policy_node.train.roboalign.data import ActionSamples, Mix, sft_batch
from vla_policy_node.train.roboalign.mllm import (
    FORMAT_TOKENS,
    MLLMConfig,
    load_mllm,
    prepare_model,
    save_mllm,
)
from vla_policy_node.train.trainer import lr_factor

FINAL = "final"  # the aligned MLLM directory (save_pretrained + processor) under output_dir


@dataclass(frozen=True)
class SFTConfig:
    run: RunConfig
    mllm: MLLMConfig = field(default_factory=MLLMConfig)
    data: list[SourceConfig] = field(default_factory=list)


def run_sft(cfg: SFTConfig, mix: Mix | None = None, until: int | None = None) -> tuple[Path, list[float]]:
    """Train; returns (final model directory, per-step losses of this call). `mix` overrides cfg.data (tests);
    `until` stops early at that step (a time-boxed job; the schedule still spans run.steps, a resume continues)."""
    actions: list[ActionSamples]
    if mix is None:
        mix, actions = build_sources(cfg.data)
    else:
        actions = [s for s in mix.sources if isinstance(s, ActionSamples)]
    run = cfg.run
    accelerator = make_accelerator(run)
    torch.manual_seed(run.seed)
    model, processor = load_mllm(cfg.mllm)
    vocab = max((a.tokenizer.vocab_size for a in actions), default=0)
    add_tokens(model, processor.tokenizer, [*FORMAT_TOKENS, *fast_token_names(vocab)])
    model = prepare_model(cfg.mllm, model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=run.lr, weight_decay=run.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, run.warmup_steps, run.steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(run.seed + accelerator.process_index)
    ckpts = Checkpoints(out, run.keep_checkpoints)
    step = ckpts.resume(accelerator, rng)
    stop = run.steps if until is None else min(until, run.steps)
    metrics = Metrics(out / "metrics.jsonl", accelerator.is_main_process)
    bar = tqdm(total=run.steps, initial=step, desc="sft", disable=not (run.progress and accelerator.is_main_process))
    losses: list[float] = []
    start = time.perf_counter()
    try:
        while step < stop:
            model.train()
            for _ in range(run.grad_accum):
                batch = to_model_device(sft_batch(processor, mix.sample(rng, run.batch_size)), model)
                with accelerator.accumulate(model), accelerator.autocast():
                    loss = model(**batch, use_cache=False).loss
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"SFT loss is {loss.item()} at step {step}")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(params, run.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.item()))
            bar.update(1)
            if step % run.log_every == 0 or step == stop:
                recent = float(np.mean(losses[-run.log_every:]))
                bar.set_postfix(loss=f"{recent:.4f}")
                metrics.write({"step": step, "loss": recent, "lr": scheduler.get_last_lr()[0],
                               "elapsed_s": round(time.perf_counter() - start, 3)})
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
    return final, losses


def main(argv: list[str] | None = None) -> None:
    parser = CliParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML/JSON: run, mllm, data (see README.md)")
    args = parser.parse_args(argv)
    final, _ = run_sft(load_config_file(SFTConfig, args.config))
    print(f"aligned MLLM: {final}")


if __name__ == "__main__":
    main()
