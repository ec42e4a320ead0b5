"""InferenceStep.step: the live node's request -> run -> land, with its pauses before the two stretches of work
(the request, the landing) where the node lets a control tick that is due go first."""

from __future__ import annotations

from types import SimpleNamespace

from vla_policy_node.control.inference import InferenceStep


class ScriptedLoop:
    """The part of a ControlLoop an inference step calls, logging each call."""

    def __init__(self, log: list[str], wants: bool) -> None:
        self.log, self.wants = log, wants
        self.sync = SimpleNamespace(poll=lambda now: log.append("poll") or "obs")

    def should_request_inference(self, now: float) -> bool:
        self.log.append("should_request")
        return self.wants

    def begin_inference(self, obs, now):
        self.log.append("begin")
        return None

    def on_chunk(self, chunk, latency, now) -> bool:
        self.log.append("land")
        return True


class ScriptedPolicy:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def infer(self, observation, *, prefix=None):
        self.log.append("infer")
        return "chunk"


def test_step_pauses_before_the_request_and_before_the_landing():
    log: list[str] = []
    step = InferenceStep(ScriptedLoop(log, wants=True), ScriptedPolicy(log))
    result = step.step(lambda: 1.0, pause=lambda: log.append("pause"))
    assert result is not None and result.chunk == "chunk"
    assert log == ["pause", "should_request", "poll", "begin", "infer", "pause", "land"]


def test_step_with_nothing_to_do_pauses_once_and_runs_nothing():
    log: list[str] = []
    step = InferenceStep(ScriptedLoop(log, wants=False), ScriptedPolicy(log))
    assert step.step(lambda: 1.0, pause=lambda: log.append("pause")) is None
    assert log == ["pause", "should_request"]


def test_step_without_a_pause_runs_straight_through():
    log: list[str] = []
    step = InferenceStep(ScriptedLoop(log, wants=True), ScriptedPolicy(log))
    step.step(lambda: 1.0)
    assert log == ["should_request", "poll", "begin", "infer", "land"]
