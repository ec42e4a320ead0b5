"""RoboAlign training data: VQA/reasoning samples from JSONL, action samples as FAST-token answers, and a mix.

VQA layout (one JSON object per line; image paths relative to the JSONL file):
    {"images": ["imgs/0001.png"], "question": "What is on the table?", "answer": "a red block",
     "reasoning": "optional chain of thought"}
With "reasoning", the answer becomes `<think>{reasoning}</think><answer>{answer}</answer>`; without, the answer
is used as is.

Action samples come from any `SampleDataset` (e.g. `LeRobotSamples`, the bag-to-dataset output): the prompt is the
instruction with the camera images (the same prompt the policy's backbone builds), the answer
`<think>{reasoning}</think><answer><ACTION_START><fast_..>...<ACTION_END></answer>` with the chunk normalized as
the FAST tokenizer was fitted. Reasoning comes from an optional JSONL `{"index": i, "reasoning": "..."}` (sample
index in the dataset), else from `reasoning_template` formatted with the instruction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.processing_utils import ProcessorMixin

from vla_policy_node.model.asa.fast import ACTION_END, ACTION_START, fast_token_names
from vla_policy_node.model.asa.tokenizers.fast import FastTokenizer
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.train.data import SampleDataset

DEFAULT_REASONING = "The task is to {instruction}. I will move the arm accordingly."


@dataclass(frozen=True)
class TextSample:
    images: list[np.ndarray]  # HxWx3 uint8 RGB, >= 1
    prompt: str
    answer: str
    target: list[str] | None = None  # action-token strings (GRPO accuracy target); None for VQA


def format_answer(answer: str, reasoning: str | None) -> str:
    return answer if reasoning is None else f"<think>{reasoning}</think><answer>{answer}</answer>"


def action_answer(tokens: Sequence[str], reasoning: str) -> str:
    return f"<think>{reasoning}</think><answer>{ACTION_START}{''.join(tokens)}{ACTION_END}</answer>"


class VQASamples:
    """A JSONL file in the layout above."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        for i, row in enumerate(self.rows):
            missing = {"images", "question", "answer"} - set(row)
            if missing or not row["images"]:
                raise ValueError(f"{self.path}:{i + 1}: needs images (non-empty), question and answer")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> TextSample:
        row = self.rows[index]
        images = [np.asarray(Image.open(self.path.parent / p).convert("RGB")) for p in row["images"]]
        return TextSample(images, row["question"], format_answer(row["answer"], row.get("reasoning")))


class ActionSamples:
    """Robot samples as (images, instruction) -> FAST-token answer."""

    def __init__(self, dataset: SampleDataset, tokenizer: FastTokenizer, normalization: NormalizationSet, *,
                 reasoning: dict[int, str] | None = None, reasoning_template: str = DEFAULT_REASONING) -> None:
        if not tokenizer.fitted:
            raise ValueError("the FAST tokenizer must be fitted")
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.normalization = normalization
        self.names = fast_token_names(tokenizer.vocab_size)
        self.reasoning = reasoning or {}
        self.template = reasoning_template

    def __len__(self) -> int:
        return len(self.dataset)

    def target(self, index: int) -> list[str]:
        sample = self.dataset[index]
        chunk = self.normalization[sample.tag].action.normalize(np.asarray(sample.actions, np.float64))
        return [self.names[t] for t in self.tokenizer.encode(chunk[None])[0]]

    def __getitem__(self, index: int) -> TextSample:
        sample = self.dataset[index]
        target = self.target(index)
        reasoning = self.reasoning.get(index, self.template.format(instruction=sample.instruction))
        return TextSample(list(sample.images.values()), sample.instruction, action_answer(target, reasoning), target)


def load_reasoning(path: str | Path | None) -> dict[int, str]:
    if path is None:
        return {}
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {int(r["index"]): str(r["reasoning"]) for r in rows}


@dataclass
class Mix:
    """Weighted sampling across sources (weights need not sum to 1)."""

    sources: list[Any]
    weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.weights = self.weights or [1.0] * len(self.sources)
        if len(self.weights) != len(self.sources) or not self.sources or min(self.weights) < 0:
            raise ValueError("one non-negative weight per source, at least one source")
        if any(len(s) == 0 for s in self.sources):
            raise ValueError("empty data source in the mix")
        w = np.asarray(self.weights, np.float64)
        self.p = w / w.sum()

    def sample(self, rng: np.random.Generator, n: int) -> list[TextSample]:
        picks = rng.choice(len(self.sources), size=n, p=self.p)
        return [self.sources[s][int(rng.integers(len(self.sources[s])))] for s in picks]


def chat_prompt(processor: ProcessorMixin, num_images: int, text: str) -> str:
    """The policy backbone's prompt (`Backbone._prompt`): images then text, as a user turn, generation prompt on."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": text})
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def encode_prompts(processor: ProcessorMixin, samples: Sequence[TextSample], padding_side: str = "left",
                   repeat: int = 1) -> dict[str, torch.Tensor]:
    """Processor inputs of the prompts (each repeated `repeat` times, consecutively)."""
    samples = [s for s in samples for _ in range(repeat)]
    texts = [chat_prompt(processor, len(s.images), s.prompt) for s in samples]
    batch = processor(images=[list(s.images) for s in samples], text=texts, return_tensors="pt", padding=True,
                      padding_side=padding_side)
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def append_tokens(inputs: dict[str, torch.Tensor], rows: Sequence[Sequence[int]], pad_id: int,
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Right-padded prompts + per-row extra token ids -> (inputs of the joint sequences, mask of the extra ids).

    Token-aligned tensors are extended: input_ids with the ids, attention_mask with 1, token_type_ids with 1
    (PaliGemma: the suffix attends causally), any other (e.g. mm_token_type_ids) with 0.
    """
    ids = inputs["input_ids"]
    lengths = inputs["attention_mask"].sum(1).tolist()
    total = max(int(n) + len(r) for n, r in zip(lengths, rows, strict=True))
    out: dict[str, torch.Tensor] = {}
    aligned = {k: v for k, v in inputs.items() if v.dim() == 2 and v.shape == ids.shape}
    for key, value in aligned.items():
        fill = pad_id if key == "input_ids" else 0
        new = torch.full((len(rows), total), fill, dtype=value.dtype)
        for b, (n, extra) in enumerate(zip(lengths, rows, strict=True)):
            n = int(n)
            new[b, :n] = value[b, :n]
            tail = {"input_ids": torch.tensor(list(extra), dtype=value.dtype),
                    "attention_mask": torch.ones(len(extra), dtype=value.dtype),
                    "token_type_ids": torch.ones(len(extra), dtype=value.dtype)}.get(
                key, torch.zeros(len(extra), dtype=value.dtype))
            new[b, n:n + len(extra)] = tail
        out[key] = new
    mask = torch.zeros(len(rows), total, dtype=torch.bool)
    for b, (n, extra) in enumerate(zip(lengths, rows, strict=True)):
        mask[b, int(n):int(n) + len(extra)] = True
    out.update({k: v for k, v in inputs.items() if k not in aligned})
    return out, mask


def sft_batch(processor: ProcessorMixin, samples: Sequence[TextSample]) -> dict[str, torch.Tensor]:
    """Prompt + answer + EOS, labels on the answer (and EOS) only."""
    tok = processor.tokenizer
    prompts = encode_prompts(processor, samples, padding_side="right")
    answers = [tok(s.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for s in samples]
    inputs, mask = append_tokens(prompts, answers, tok.pad_token_id)
    inputs["labels"] = inputs["input_ids"].masked_fill(~mask, -100)
    return inputs
