"""`infer(observation) -> ActionChunk` on top of a VLAModel: validation, normalization, timing, seeding.

The backbone runs once per chunk; only the head runs per denoising step (flow head). With an action-space adapter
head the prompt is prefilled once and each action token is one cached backbone step (`head_steps_ms` per token);
RTC prefixes cannot steer token decoding and are ignored (with one warning).
Outputs are in physical units with the embodiment's action names, stamped with the observation's stamp so the
control runtime can compensate latency.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vla_policy_node.model.checkpoint import load_checkpoint
from vla_policy_node.model.fast_path import FastPath, FastPathConfig
from vla_policy_node.model.vla import VLAModel
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix
from vla_policy_node.spec.validation import validate_observation

log = logging.getLogger(__name__)


@dataclass
class InferenceTimings:
    """Wall-clock breakdown of the last call, in milliseconds."""

    preprocess_ms: float = 0.0
    backbone_ms: float = 0.0
    head_steps_ms: list[float] = field(default_factory=list)
    postprocess_ms: float = 0.0
    total_ms: float = 0.0


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class VLAPolicy:
    """A VLAModel bound to one robot. Thread-safe: calls are serialized by a lock."""

    def __init__(
        self,
        model: VLAModel,
        normalization: NormalizationSet,
        embodiment: Embodiment,
        *,
        seed: int = 0,
        num_steps: int | None = None,
        sync_timing: bool | None = None,
        fast_path: FastPathConfig | None = None,
    ) -> None:
        """fast_path: the switchable GPU fast path (model/fast_path.py); None = the eager path."""
        if getattr(model.config.head, "discrete", False):
            raise ValueError("a discrete action-space adapter has no action chunks: use DiscreteActionPolicy")
        self.model = model.eval()
        self._embodiment = embodiment
        self.slot = model.slot(embodiment.tag)
        self.slot.check_matches(embodiment)
        self.norm: EmbodimentNormalization = normalization[embodiment.tag]
        if self.norm.state.stats.dim != self.slot.state_dim or self.norm.action.stats.dim != self.slot.action_dim:
            raise ValueError(
                f"normalization for {embodiment.tag!r} has dims "
                f"{self.norm.state.stats.dim}/{self.norm.action.stats.dim}, "
                f"the model slot has {self.slot.state_dim}/{self.slot.action_dim}"
            )
        self.fast = FastPath(model, fast_path) if fast_path is not None else None
        param = next(model.head.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.num_steps = num_steps or getattr(model.config.head, "num_steps", 0)
        self.seed = seed
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._sync = self.device.type == "cuda" if sync_timing is None else sync_timing
        self._lock = threading.Lock()
        self._warned_prefix = False
        self.last_timings = InferenceTimings()

    @classmethod
    def from_checkpoint(cls, source: str | Path, embodiment: Embodiment, *, device: str = "cpu",
                        dtype: torch.dtype | None = None, seed: int = 0, num_steps: int | None = None,
                        fast_path: FastPathConfig | None = None) -> VLAPolicy:
        dev = torch.device(device)
        model, normalization = load_checkpoint(source, device=dev, dtype=dtype or default_dtype(dev))
        return cls(model, normalization, embodiment, seed=seed, num_steps=num_steps, fast_path=fast_path)

    @property
    def embodiment(self) -> Embodiment:
        return self._embodiment

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The tokenizer's special and added special tokens (image placeholders, chat-turn markers): in an
        instruction they would change the layout of the model's input, so the runtime refuses such text."""
        tokenizer = getattr(getattr(self.model.backbone, "processor", None), "tokenizer", None)
        if tokenizer is None:
            return ()
        tokens = set(tokenizer.all_special_tokens)
        tokens |= {str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
                   if getattr(t, "special", False)}
        return tuple(sorted(tokens))

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._generator.manual_seed(seed)

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        return self.infer_batch([observation], prefixes=[prefix])[0]

    def _clock(self) -> float:
        if self._sync:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    @torch.inference_mode()
    def infer_batch(
        self, observations: Sequence[Observation], *, prefixes: Sequence[RtcPrefix | None] | None = None
    ) -> list[ActionChunk]:
        if not observations:
            return []
        prefixes = list(prefixes) if prefixes is not None else [None] * len(observations)
        if len(prefixes) != len(observations):
            raise ValueError(f"{len(prefixes)} prefixes for {len(observations)} observations")
        with self._lock:
            return self._infer(list(observations), prefixes)

    def _infer(self, observations: list[Observation], prefixes: list[RtcPrefix | None]) -> list[ActionChunk]:
        timings = InferenceTimings()
        t0 = self._clock()
        for obs in observations:
            validate_observation(obs, self._embodiment)
        head_cfg = self.model.config.head
        horizon = head_cfg.horizon
        b = len(observations)
        instructions = [obs.instruction for obs in observations]
        if self.fast is not None:  # frames as received; fitted to the camera sizes in the fast path (on the device)
            cams = [self._embodiment.camera(name) for name in self.slot.camera_names]
            images = [[_native(obs, name) for name in self.slot.camera_names] for obs in observations]
            inputs = self.fast.prepare(images, instructions, [(c.height, c.width) for c in cams])
        else:
            images = [[obs.images[name] for name in self.slot.camera_names] for obs in observations]
            inputs = self.model.backbone.prepare(images, instructions)
        inputs = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        inputs = {k: v.to(self.dtype) if torch.is_tensor(v) and v.is_floating_point() else v
                  for k, v in inputs.items()}
        state = np.zeros((b, head_cfg.max_state_dim), dtype=np.float32)
        state[:, : self.slot.state_dim] = self.norm.state.normalize(np.stack([o.state for o in observations]))
        state_t = torch.from_numpy(state).to(self.device, self.dtype)
        category = torch.full((b,), self.slot.index, dtype=torch.long, device=self.device)
        prefix_t, weights_t = self._prefix_tensors(prefixes, horizon)
        t1 = self._clock()
        step_marks: list[float] = []
        if self.model.head_type == "flow":
            ctx = self.model.encode(inputs, state_t, category)
            step_marks.append(self._clock())
            actions = self.model.head.sample(  # the captured loop when the fast path installed one
                ctx,
                horizon=horizon,
                num_steps=self.num_steps,
                generator=self._generator,
                prefix=prefix_t,
                prefix_weights=weights_t,
                step_callback=lambda _i: step_marks.append(self._clock()),
            )
        else:
            if prefix_t is not None and not self._warned_prefix:
                # Adapters predict chunks in one pass or by decoding tokens: nothing to steer toward a prefix. The
                # executor still blends every new chunk into the running plan, so commands stay continuous.
                log.warning("RTC prefix ignored: the %s action-space adapter cannot be guided by it",
                            self.model.config.head.adapter)
                self._warned_prefix = True
            actions = self.model.head.predict(
                self.model.backbone, inputs, state_t, category, generator=self._generator,
                on_prefill=lambda: step_marks.append(self._clock()),
                on_step=lambda _i: step_marks.append(self._clock()),
            ).actions
        t2 = step_marks[0]
        normalized = actions[:, :, : self.slot.action_dim].float().cpu().numpy()
        physical = self.norm.action.unnormalize(normalized)
        if not np.all(np.isfinite(physical)):
            raise FloatingPointError("model produced NaN/Inf actions; refusing to return them")
        chunks = [
            ActionChunk(stamp=obs.stamp, dt=self.slot.dt, actions=physical[i], names=self.slot.action_names)
            for i, obs in enumerate(observations)
        ]
        t3 = self._clock()
        timings.preprocess_ms = (t1 - t0) * 1e3
        timings.backbone_ms = (t2 - t1) * 1e3
        timings.head_steps_ms = [(b_ - a) * 1e3 for a, b_ in itertools.pairwise(step_marks)]
        timings.postprocess_ms = (t3 - step_marks[-1]) * 1e3
        timings.total_ms = (t3 - t0) * 1e3
        self.last_timings = timings
        return chunks

    def _prefix_tensors(
        self, prefixes: list[RtcPrefix | None], horizon: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if all(p is None for p in prefixes):
            return None, None
        a_max = self.model.config.head.max_action_dim
        out = np.zeros((len(prefixes), horizon, a_max), dtype=np.float32)
        weights = np.zeros((len(prefixes), horizon), dtype=np.float32)
        for i, p in enumerate(prefixes):
            if p is None:
                continue
            if p.actions.shape != (horizon, self.slot.action_dim):
                raise ValueError(
                    f"RTC prefix must be [{horizon}, {self.slot.action_dim}], got {list(p.actions.shape)}"
                )
            out[i, :, : self.slot.action_dim] = self.norm.action.normalize(p.actions)
            weights[i] = p.weights
        return (torch.from_numpy(out).to(self.device, self.dtype), torch.from_numpy(weights).to(self.device))


def _native(obs: Observation, name: str) -> np.ndarray:
    images = obs.images
    return images.native(name) if isinstance(images, FittedImages) else images[name]
