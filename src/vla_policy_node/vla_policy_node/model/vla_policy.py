"""`infer(observation) -> ActionChunk` on top of a VLAModel: validation, the transform pipeline, timing, seeding.

One path for every head (`model/heads.py`): observations go through the checkpoint's input pipeline
(`model/transforms`: cameras, resize, normalization, padding, the backbone's processor) exactly as training
samples do, `VLAModel.predict` runs the head, and the pipeline's output steps (unpad, unnormalize) bring the
actions back in physical units. The flow head runs the backbone once per chunk and only itself per denoising
step; a token head prefills the prompt once and decodes each action token as one cached backbone step
(`head_steps_ms` per token). RTC prefixes steer only heads whose config is `guided_by_prefix`; the others ignore
them (with one warning).

With a fast path (`model/fast_path.py`) the same pipeline runs with its batch step on the device: frames as
received are fitted to the camera sizes and prepared as tensors there, and the flow head's denoising loop may be
a captured graph.

Continuous heads answer `infer` with an ActionChunk stamped with the observation's stamp (the control runtime
compensates latency). Discrete heads (BabyAI-style agents: an action index, no chunk, no units, no robot
embodiment) answer `act`; `DiscreteActionPolicy` is the same class bound to such a head's single agent slot.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_policy_node.model.checkpoint import load_checkpoint
from vla_policy_node.model.fast_path import FastPath, FastPathConfig
from vla_policy_node.model.transforms.frame import Frame
from vla_policy_node.model.transforms.pipeline import TransformPipeline
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.spec.embodiment import Embodiment
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
    """A VLAModel bound to one robot (continuous heads) or one agent slot (discrete heads). Thread-safe: calls are
    serialized by a lock.

    embodiment: the robot config; required for continuous heads, must be None for discrete ones.
    normalization: the checkpoint's stats (discrete heads: may be None, identity).
    sampling: decoding of token heads (default: the head config's); num_steps: denoising steps of the flow head.
    fast_path: the switchable GPU fast path (model/fast_path.py); None = the eager path.
    """

    def __init__(
        self,
        model: VLAModel,
        normalization: NormalizationSet | None,
        embodiment: Embodiment | None,
        *,
        seed: int = 0,
        num_steps: int | None = None,
        sync_timing: bool | None = None,
        sampling: Any = None,
        fast_path: FastPathConfig | None = None,
    ) -> None:
        head = model.config.head
        self.discrete = head.discrete
        if self.discrete and embodiment is not None:
            raise ValueError("a discrete action head answers with action indices, not action chunks for a robot: "
                             "serve it with DiscreteActionPolicy(model) (act / act_batch)")
        if not self.discrete and embodiment is None:
            raise ValueError(f"the {head.head_name!r} head predicts action chunks: bind it to the robot's embodiment")
        self.model = model.eval()
        self._embodiment = embodiment
        if embodiment is not None:
            self.slot = model.slot(embodiment.tag)
            self.slot.check_matches(embodiment)
        else:
            if len(model.config.embodiments) != 1:
                raise ValueError("a discrete policy serves exactly one agent slot")
            self.slot = model.config.embodiments[0]
        if normalization is None:
            normalization = NormalizationSet(
                {self.slot.tag: EmbodimentNormalization.identity(self.slot.state_dim, self.slot.action_dim)})
        self.norm: EmbodimentNormalization = normalization[self.slot.tag]
        if self.norm.state.stats.dim != self.slot.state_dim or self.norm.action.stats.dim != self.slot.action_dim:
            raise ValueError(
                f"normalization for {self.slot.tag!r} has dims "
                f"{self.norm.state.stats.dim}/{self.norm.action.stats.dim}, "
                f"the model slot has {self.slot.state_dim}/{self.slot.action_dim}"
            )
        self.fast = FastPath(model, fast_path) if fast_path is not None else None
        pipeline = TransformPipeline.from_model(model, normalization, embodiment)
        # the fast path fits frames as received to the camera sizes and runs the processor (on the device)
        self.pipeline = pipeline if self.fast is None else pipeline.with_image_inputs(self.fast.prepare)
        param = next(model.head.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.num_steps = num_steps or getattr(head, "num_steps", 0)
        self.sampling = sampling
        self.seed = seed
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._sync = self.device.type == "cuda" if sync_timing is None else sync_timing
        self._lock = threading.Lock()
        self._warned_prefix = False
        self.last_timings = InferenceTimings()
        self.last_tokens: list[list[int]] = []

    @classmethod
    def from_checkpoint(cls, source: str | Path, embodiment: Embodiment, *, device: str = "cpu",
                        dtype: torch.dtype | None = None, seed: int = 0, num_steps: int | None = None,
                        fast_path: FastPathConfig | None = None) -> VLAPolicy:
        dev = torch.device(device)
        model, normalization = load_checkpoint(source, device=dev, dtype=dtype or default_dtype(dev))
        return cls(model, normalization, embodiment, seed=seed, num_steps=num_steps, fast_path=fast_path)

    @property
    def embodiment(self) -> Embodiment:
        if self._embodiment is None:
            raise AttributeError("a discrete policy is bound to an agent slot, not a robot embodiment")
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

    def _clock(self) -> float:
        if self._sync:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    # ------------------------------------------------------------------ continuous heads
    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        return self.infer_batch([observation], prefixes=[prefix])[0]

    @torch.inference_mode()
    def infer_batch(
        self, observations: Sequence[Observation], *, prefixes: Sequence[RtcPrefix | None] | None = None
    ) -> list[ActionChunk]:
        if self.discrete:
            raise ValueError("a discrete action head has no action chunks: use act / act_batch")
        if not observations:
            return []
        prefixes = list(prefixes) if prefixes is not None else [None] * len(observations)
        if len(prefixes) != len(observations):
            raise ValueError(f"{len(prefixes)} prefixes for {len(observations)} observations")
        with self._lock:
            for obs in observations:
                validate_observation(obs, self.embodiment)
            native = self.pipeline.image_inputs is not None  # frames as received: the fast path fits them
            frames = [Frame.from_observation(obs, self.slot.tag, native=native) for obs in observations]
            actions = self._run(frames, prefixes)
            return [ActionChunk(stamp=obs.stamp, dt=self.slot.dt, actions=a, names=self.slot.action_names)
                    for obs, a in zip(observations, actions, strict=True)]

    # ------------------------------------------------------------------ discrete heads
    def act(self, images: Mapping[str, np.ndarray], instruction: str) -> int:
        return self.act_batch([images], [instruction])[0]

    @torch.inference_mode()
    def act_batch(self, images: Sequence[Mapping[str, np.ndarray]], instructions: Sequence[str]) -> list[int]:
        """Action index per sample; `images[b]` maps the slot's camera names to HxWx3 uint8 RGB."""
        if not self.discrete:
            raise ValueError(f"the {self.model.config.head.head_name!r} head predicts action chunks: use infer")
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} image sets for {len(instructions)} instructions")
        with self._lock:
            frames = [Frame(tag=self.slot.tag, images=sample, state=np.zeros(self.slot.state_dim),
                            instruction=text) for sample, text in zip(images, instructions, strict=True)]
            actions = self._run(frames, [None] * len(frames))
            return [int(np.rint(a.reshape(-1)[0])) for a in actions]

    @property
    def actions(self) -> tuple[str, ...]:
        """The names of a discrete head's actions (index -> name)."""
        return tuple(getattr(self.model.config.head, "actions", ()))

    # ------------------------------------------------------------------ the one path
    def _run(self, frames: list[Frame], prefixes: list[RtcPrefix | None]) -> list[np.ndarray]:
        """frames -> input pipeline -> model.predict -> output pipeline: actions per frame ([H, D], physical)."""
        timings = InferenceTimings()
        t0 = self._clock()
        batch = self.pipeline.to_device(self.pipeline.inputs(frames), self.device, self.dtype)
        prefix_t, weights_t = self._prefix_tensors(prefixes)
        if prefix_t is not None and not self.model.config.head.guided_by_prefix and not self._warned_prefix:
            # Nothing to steer toward a prefix. The executor still blends every new chunk into the running plan,
            # so commands stay continuous.
            log.warning("RTC prefix ignored: the %s head cannot be guided by it", self.model.config.head.head_name)
            self._warned_prefix = True
        t1 = self._clock()
        marks: list[float] = []

        def mark() -> None:
            marks.append(self._clock())

        prediction = self.model.predict(batch, generator=self._generator, sampling=self.sampling,
                                        num_steps=self.num_steps, prefix=prefix_t, prefix_weights=weights_t,
                                        on_prefill=mark, on_step=lambda _i: mark(),
                                        sample_fn=self.fast.sample if self.fast is not None else None)
        self.last_tokens = prediction.tokens
        actions = self.pipeline.outputs(prediction.actions, [f.tag for f in frames])
        if not all(np.all(np.isfinite(a)) for a in actions):
            raise FloatingPointError("model produced NaN/Inf actions; refusing to return them")
        t3 = self._clock()
        timings.preprocess_ms = (t1 - t0) * 1e3
        timings.backbone_ms = (marks[0] - t1) * 1e3
        timings.head_steps_ms = [(b - a) * 1e3 for a, b in itertools.pairwise(marks)]
        timings.postprocess_ms = (t3 - marks[-1]) * 1e3
        timings.total_ms = (t3 - t0) * 1e3
        self.last_timings = timings
        return actions

    def _prefix_tensors(self, prefixes: list[RtcPrefix | None]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """RTC prefixes through the same action steps as training targets (normalize, pad)."""
        if all(p is None for p in prefixes):
            return None, None
        head = self.model.config.head
        horizon = head.horizon
        out = np.zeros((len(prefixes), horizon, head.max_action_dim), dtype=np.float32)
        weights = np.zeros((len(prefixes), horizon), dtype=np.float32)
        for i, p in enumerate(prefixes):
            if p is None:
                continue
            if p.actions.shape != (horizon, self.slot.action_dim):
                raise ValueError(
                    f"RTC prefix must be [{horizon}, {self.slot.action_dim}], got {list(p.actions.shape)}"
                )
            out[i] = self.pipeline.encode_actions(p.actions, self.slot.tag)
            weights[i] = p.weights
        return (torch.from_numpy(out).to(self.device, self.dtype), torch.from_numpy(weights).to(self.device))


class DiscreteActionPolicy(VLAPolicy):
    """A VLAPolicy bound to a discrete head's single agent slot: `act` / `act_batch` -> action indices.

    A thin alias, kept as its own name because its API is not the robot `Policy` protocol (no embodiment, no
    chunks): call sites say which of the two they use, and a continuous model is refused here by name.
    """

    def __init__(self, model: VLAModel, *, seed: int = 0, sampling: Any = None,
                 normalization: NormalizationSet | None = None) -> None:
        if not model.config.head.discrete:
            raise ValueError("DiscreteActionPolicy needs a discrete action-space adapter head")
        super().__init__(model, normalization, None, seed=seed, sampling=sampling)

    @classmethod
    def from_checkpoint(cls, source: str | Path, *, device: str = "cpu",  # type: ignore[override]
                        seed: int = 0) -> DiscreteActionPolicy:
        model, normalization = load_checkpoint(source, device=torch.device(device))
        return cls(model, seed=seed, normalization=normalization)
