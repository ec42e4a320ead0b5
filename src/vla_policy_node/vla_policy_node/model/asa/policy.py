"""Acting with a discrete action-space adapter (BabyAI-style agents): observation images + instruction -> action.

Continuous adapters go through `VLAPolicy.infer -> ActionChunk` like the flow head; discrete actions have no
chunk, units or embodiment, so they get this small counterpart.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from vla_policy_node.model.asa.decoding import Sampling
from vla_policy_node.model.checkpoint import load_checkpoint
from vla_policy_node.model.vla import VLAModel


class DiscreteActionPolicy:
    def __init__(self, model: VLAModel, *, seed: int = 0, sampling: Sampling | None = None) -> None:
        head = model.config.head
        if not getattr(head, "discrete", False):
            raise ValueError("DiscreteActionPolicy needs a discrete action-space adapter head")
        if len(model.config.embodiments) != 1:
            raise ValueError("a discrete policy serves exactly one agent slot")
        self.model = model.eval()
        self.slot = model.config.embodiments[0]
        self.actions: tuple[str, ...] = head.actions
        self.sampling = sampling
        param = next(model.head.parameters())
        self.device = param.device
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._lock = threading.Lock()
        self.last_tokens: list[list[int]] = []

    @classmethod
    def from_checkpoint(cls, source: str | Path, *, device: str = "cpu", seed: int = 0) -> DiscreteActionPolicy:
        model, _ = load_checkpoint(source, device=torch.device(device))
        return cls(model, seed=seed)

    def act(self, images: Mapping[str, np.ndarray], instruction: str) -> int:
        return self.act_batch([images], [instruction])[0]

    @torch.inference_mode()
    def act_batch(self, images: Sequence[Mapping[str, np.ndarray]], instructions: Sequence[str]) -> list[int]:
        """Action index per sample; `images[b]` maps the slot's camera names to HxWx3 uint8 RGB."""
        with self._lock:
            frames = [[sample[name] for name in self.slot.camera_names] for sample in images]
            inputs = self.model.backbone.prepare(frames, list(instructions))
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            b = len(frames)
            state = torch.zeros(b, self.model.config.head.max_state_dim, device=self.device)
            category = torch.full((b,), self.slot.index, dtype=torch.long, device=self.device)
            pred = self.model.head.predict(self.model.backbone, inputs, state, category, sampling=self.sampling,
                                           generator=self._generator)
            self.last_tokens = pred.tokens
            return [int(v) for v in pred.actions.reshape(-1).round().long().tolist()]
