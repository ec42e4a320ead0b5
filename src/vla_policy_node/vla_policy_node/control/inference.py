"""One inference step against a ControlLoop, the same for the policy node's inference thread and the bag replay:

    request(now):  should_request_inference -> sync.poll -> begin_inference    (None: nothing to do now)
    run(request):  policy.infer(obs, prefix=...), timed; an exception is a result, never raised
    land(result, now): loop.on_chunk, or loop.on_inference_error (the policy holds until a good chunk)

The live node runs the three back to back (`step`); the replay lands the result when the inference would have
finished in the bag's time. numpy only: the policy is anything with `infer` (VLAPolicy, a scripted stand-in).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix


class InferencePolicy(Protocol):
    """What an inference step needs from a policy (VLAPolicy, or a scripted one in tests)."""

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk: ...


@dataclass(frozen=True)
class InferenceRequest:
    obs: Observation
    prefix: RtcPrefix | None
    started: float  # the node's clock when the observation went to the model


@dataclass(frozen=True)
class InferenceResult:
    request: InferenceRequest
    chunk: ActionChunk | None
    error: BaseException | None
    latency: float  # wall-clock seconds `infer` took

    @property
    def ok(self) -> bool:
        return self.chunk is not None


class InferenceStep:
    def __init__(self, loop: ControlLoop, policy: InferencePolicy,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.loop = loop
        self.policy = policy
        self._timer = timer

    def request(self, now: float) -> InferenceRequest | None:
        """The observation to infer on now, with its RTC prefix; None if the loop wants nothing or has nothing new."""
        loop = self.loop
        if not loop.should_request_inference(now):
            return None
        obs = loop.sync.poll(now)
        if obs is None:
            return None
        return InferenceRequest(obs, loop.begin_inference(obs, now), now)

    def run(self, request: InferenceRequest) -> InferenceResult:
        start = self._timer()
        try:
            chunk = self.policy.infer(request.obs, prefix=request.prefix)
        except Exception as error:  # the model's failure is a status, never the caller's end
            return InferenceResult(request, None, error, self._timer() - start)
        return InferenceResult(request, chunk, None, self._timer() - start)

    def land(self, result: InferenceResult, now: float, latency: float | None = None) -> bool:
        """Hand the result to the loop at `now`; `latency` overrides the measured one. True if the chunk was
        merged into the plan."""
        if result.chunk is None:
            self.loop.on_inference_error(result.error or RuntimeError("no chunk"), now)
            return False
        return self.loop.on_chunk(result.chunk, result.latency if latency is None else latency, now)

    def step(self, clock: Callable[[], float], pause: Callable[[], object] | None = None) -> InferenceResult | None:
        """request -> run -> land, as the live node's inference thread does; None if nothing ran. `pause` is
        called before the request and before the landing, the two stretches of work between waits (the node
        puts them between its control ticks)."""
        if pause is not None:
            pause()
        request = self.request(clock())
        if request is None:
            return None
        result = self.run(request)
        if pause is not None:
            pause()
        self.land(result, clock())
        return result
